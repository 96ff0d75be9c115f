"""atlas-bot: quality gates, pull-request reviews and a live progress issue for Atlas diagram repositories."""
