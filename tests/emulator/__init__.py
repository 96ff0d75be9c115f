"""A GitHub REST API emulator for tests, refereed by GitHub's own OpenAPI description.

- ``openapi/``: the trimmed description (``trim.py`` makes it from the ``@octokit/openapi`` npm package;
  ``VERSION`` says which) — only the operations the bot uses;
- ``spec.py``: validation with openapi-core and schema-shaped answers;
- ``gitdata.py``: shas, blobs and pull request diffs from local git repositories;
- ``state.py``: the in-memory GitHub, fault injection, recorded requests;
- ``handlers.py``: one function per emulated operation; ``app.py``: the FastAPI app around them;
- ``fixtures.py``: the uvicorn runner and the pytest fixtures.
"""
