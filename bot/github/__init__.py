"""The one package that talks to GitHub (PyGithub underneath).

- :mod:`bot.github.transport`: the single request seam (auth header, retries, rate limits, write lock, counts);
- :mod:`bot.github.auth`: the App's JWT and cached installation tokens;
- :mod:`bot.github.client`: reads and simple writes on one repository;
- :mod:`bot.github.publish`: a pull request's review, summary, labels and check run, as a difference;
- :mod:`bot.github.progress_issue`: the progress issue.
"""

from bot.github.auth import AppAuth
from bot.github.client import GitHubClient, PullInfo, RepoClient
from bot.github.progress_issue import IssueRef
from bot.github.publish import PublishReport
from bot.github.transport import DEFAULT_API_URL, GitHubError, NotFound, RateLimited

__all__ = [
    "DEFAULT_API_URL",
    "AppAuth",
    "GitHubClient",
    "GitHubError",
    "IssueRef",
    "NotFound",
    "PublishReport",
    "PullInfo",
    "RateLimited",
    "RepoClient",
]
