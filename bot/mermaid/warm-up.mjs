// Diagrams a worker parses before it writes V8's code cache (worker.mjs, finish): the cache holds the functions
// compiled so far, and a worker compiles a diagram type's parser, database and error paths the first time it
// meets one. Written by the first worker to end after an installation, the cache would otherwise hold only what
// that run met (one pull request's flowcharts, say), and every later worker would compile the rest itself.
// One or two of each of the 22 established types (mermaid 11.17 knows 37; the newest, such as wardley or railroad,
// are left to a run that meets them), features their parsers branch on, and the errors writers make.
export const WARM_UP = [
  // flowcharts: shapes, edges and their labels, chains, subgraphs (nested, with direction), styling, clicks,
  // comments, front matter and directives, Markdown strings, HTML and entities in labels, new-style shapes
  `---
title: Request path
config:
  flowchart:
    curve: basis
---
flowchart TD
  %% the edge plane first
  Client([Client]) -->|HTTPS| CDN{{CDN}}
  CDN --> LB[/Load balancer/] & WAF[\\WAF\\]
  LB -- "round robin" --> API[[API gateway]]
  API -.->|async| Q[(Kafka<br/>3 brokers)]
  API ==> Svc(Service) --o Cache((Redis 7.2))
  Svc --x DB[(PostgreSQL 15)]
  Q --> Worker>Worker] <--> Store{Store?}
  Store -->|yes| S3[/"S3 #quot;hot#quot;"\\]
  Store -- no --> Glacier[\\Glacier/]
  A --- B ~~~ C
  D --> E --> F
  subgraph edge [Edge plane]
    direction LR
    CDN
    WAF
  end
  subgraph core[Service plane]
    subgraph inner[Inner]
      Svc
    end
    API
  end
  classDef edgePlane fill:#0066CC,stroke:#004499,color:#fff
  classDef statePlane fill:#FF8800,stroke:#CC6600,color:#fff;
  class CDN,WAF edgePlane
  class DB,Cache statePlane
  style Q fill:#CC0000,stroke:#990000,color:#fff
  linkStyle 0 stroke:#333,stroke-width:2px
  linkStyle default stroke:#999
  click API "https://example.com/api" "API docs"
  click Svc callback
  N1@{ shape: cyl, label: "Ledger" }
  N2@{ shape: rounded }
  M["\`**bold** and _italic_\`"] --> N1
  H["p99 &lt; 50 ms &amp; 99.99%"] --> N2`,
  `%%{init: {"theme": "dark", "flowchart": {"htmlLabels": false}}}%%
graph LR;
  A-->B;
  B-->C;C-->A;
  A--text-->D
  D-.text.->E
  E==text==>F
  F<-->G
  G o--o H
  H x--x I
  I -->|"quoted"| J
  J --> K["Text with (parentheses)"]`,
  `flowchart BT
  subgraph one
    a1-->a2
  end
  subgraph two
    b1-->b2
  end
  subgraph three
    c1-->c2
  end
  one --> two
  three --> two
  two --> c2`,
  `flowchart RL
  a --> b
  subgraph b [B]
    c --> b
  end`,
  // flowcharts mermaid rejects
  `flowchart TD
  A[Unclosed --> B`,
  `flowchart TD
  A --> B(Label (nested) here)`,
  `graph TD
  A -->|label| B |again| C`,
  `flowchart TD
  A --> end
  end --> B`,
  `flowchart TD
  subgraph S
    A --> B`,
  `flowchart LR
  A -- > B
  C -->> D`,
  `graph TD
  A["unterminated]
  B --> C`,
  `flowchart TD
  A@{ shape: nope } --> B`,
  // sequence diagrams
  `sequenceDiagram
  autonumber
  title Checkout
  box Aqua Edge
    participant C as Client
    actor U as User
  end
  participant API
  participant DB as PostgreSQL
  U->>C: click
  C->>+API: POST /orders
  API-->>-C: 201 Created
  C-)API: fire and forget
  API--)C: event
  API-xDB: dropped
  API--xDB: dropped too
  loop every 30 s
    API->>API: health check
  end
  alt healthy
    API->>DB: INSERT
  else failed over
    API->>DB: retry
  end
  opt cache hit
    API-->>C: 304
  end
  par replicas
    API->>DB: write A
  and
    API->>DB: write B
  end
  critical lock
    API->>DB: SELECT FOR UPDATE
  end
  break when the queue is full
    API-->>C: 503
  end
  rect rgb(200, 150, 255)
    Note over API,DB: p99 < 20 ms
  end
  Note right of C: retries 3 times
  Note left of DB: WAL shipped
  activate DB
  deactivate DB
  create participant W as Worker
  API->>W: spawn
  destroy W
  API-xW: kill
  links API: {"Dashboard": "https://example.com"}`,
  `sequenceDiagram
  participant A
  A->>B: missing colon text
  B-->A`,
  `sequenceDiagram
  A->>B: hi
  end`,
  `sequenceDiagram
  loop forever
    A->>B: hi`,
  // state diagrams
  `stateDiagram-v2
  direction LR
  [*] --> Idle
  Idle --> Running: start
  state Running {
    [*] --> Warm
    Warm --> Hot: load > 80%
    Hot --> Warm
    --
    [*] --> Healthy
  }
  state check <<choice>>
  Running --> check
  check --> Failed: error
  check --> Done: ok
  state fork_state <<fork>>
  Done --> fork_state
  fork_state --> A
  fork_state --> B
  state join_state <<join>>
  A --> join_state
  B --> join_state
  join_state --> [*]
  note right of Failed
    pages on-call
  end note
  Failed: Failed (retry 3x)
  classDef bad fill:#f00
  class Failed bad`,
  `stateDiagram
  [*] --> S1
  S1 --> S2 : go
  S2 --> [*]`,
  `stateDiagram-v2
  [*] --> A
  state A {
    B --> C`,
  // entity relationships, classes, requirements
  `erDiagram
  CUSTOMER ||--o{ ORDER : places
  ORDER ||--|{ LINE_ITEM : contains
  CUSTOMER }|..|{ DELIVERY_ADDRESS : uses
  ORDER {
    string id PK
    int customer_id FK "owner"
    datetime created_at
  }`,
  `erDiagram
  A ||--o{ B`,
  `classDiagram
  direction RL
  class Animal {
    <<interface>>
    +String name
    +int age
    +makeSound()* void
    -digest()$ bool
  }
  class Duck~T~
  Animal <|-- Duck
  Animal *-- Leg : has
  Animal o-- Owner
  Duck --> Pond : swims in
  Duck ..> Food
  Duck ..|> Flyer
  Duck "1" -- "many" Egg
  note for Duck "quacks"
  namespace Birds {
    class Goose
  }`,
  `classDiagram
  class A {
    +method(`,
  `requirementDiagram
  requirement latency {
    id: 1
    text: p99 under 50 ms
    risk: high
    verifymethod: test
  }
  element api {
    type: service
  }
  api - satisfies -> latency`,
  // time and numbers
  `gantt
  title Migration
  dateFormat YYYY-MM-DD
  axisFormat %m/%d
  excludes weekends
  todayMarker off
  section Prepare
  Snapshot       :done, snap, 2024-01-01, 2d
  Dual writes    :active, dual, after snap, 5d
  section Cut over
  Switch reads   :crit, switch, after dual, 1d
  Milestone      :milestone, m1, after switch, 0d
  Clean up       :2024-01-20, 3d
  Verify         :24h`,
  `gantt
  dateFormat YYYY-MM-DD
  section S
  Task :a1, 2024-13-45, 3d`,
  `gantt
  dateFormat HH:mm
  axisFormat %H:%M
  section Incident
  Detect :t1, 10:00, 5m
  Mitigate :t2, after t1, 20m`,
  `gantt
  section S
  Task :a1, after nothing`,
  `pie showData
  title Cost by service
  "Compute" : 45.5
  "Storage" : 30
  "Network" : 24.5`,
  `pie
  "A" 10`,
  `xychart-beta
  title "Requests per second"
  x-axis [mon, tue, wed, thu, fri]
  y-axis "RPS" 0 --> 12000
  bar [5000, 6000, 7500, 8200, 11000]
  line [4800, 6100, 7400, 8300, 10900]`,
  `xychart-beta horizontal
  x-axis "Region" [us, eu, ap]
  y-axis 0 --> 100
  bar [40, 30, 30]`,
  `xychart-beta
  x-axis [a, b
  bar [1, 2]`,
  `quadrantChart
  title Reach and effort
  x-axis Low effort --> High effort
  y-axis Low reach --> High reach
  quadrant-1 Plan
  quadrant-2 Do
  quadrant-3 Drop
  quadrant-4 Delegate
  Cache: [0.3, 0.6]
  Sharding: [0.8, 0.9] radius: 8, color: #ff3300`,
  `sankey-beta
  Ingress,API,100
  API,DB,60
  API,Cache,40`,
  `sankey-beta
  a,b`,
  `timeline
  title Outage
  section Detection
    T+2 min : Alerts fire : Pager
    T+5 min : Incident declared
  section Recovery
    T+30 min : Failover
    T+60 min : All clear`,
  `timeline
  title Bad
  2024 : ok
  : orphan event
  section`,
  `journey
  title Checkout
  section Browse
    Search: 5: User
    Compare: 3: User, Bot
  section Pay
    Pay: 1: User`,
  `gitGraph
  commit id: "init"
  branch release
  checkout release
  commit id: "fix" tag: "v1.0" type: HIGHLIGHT
  checkout main
  commit
  cherry-pick id: "fix"
  merge release`,
  `gitGraph
  commit id: "a"
  checkout nowhere`,
  `mindmap
  root((Atlas))
    Systems
      Netflix
      Uber
    Incidents
      ::icon(fa fa-fire)
      S3 2017
    Costs[Costs]`,
  `mindmap
  root
      child
    bad indent`,
  `C4Context
  title System context
  Person(user, "User")
  System(atlas, "Atlas", "Diagrams")
  System_Ext(gh, "GitHub")
  Rel(user, atlas, "reads")
  BiRel(atlas, gh, "syncs")
  UpdateRelStyle(user, atlas, $offsetY="-10")`,
  `block-beta
  columns 3
  a["Edge"] b["Service"] c["State"]
  block:group1:2
    d e
  end
  a --> b`,
  `packet-beta
  0-15: "Source port"
  16-31: "Destination port"
  32-63: "Sequence number"`,
  `architecture-beta
  group api(cloud)[API]
  service db(database)[Database] in api
  service server(server)[Server] in api
  db:L -- R:server`,
  `kanban
  Todo
    [Write runbook]
  Doing
    id2[Failover drill]@{ priority: 'High' }`,
  `radar-beta
  axis a["Latency"], b["Cost"], c["Reliability"]
  curve x["Now"]{3, 2, 4}
  max 5`,
  `treemap-beta
  "Compute"
    "EC2": 40
    "Lambda": 10
  "Storage"
    "S3": 30`,
  `zenuml
  title Order
  A.method()`,
  // not a diagram mermaid knows, and no diagram at all
  `flowhcart TD
  A --> B`,
  ``,
];
