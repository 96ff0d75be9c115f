#!/usr/bin/env bash
# The Action's one step (action.yml): arguments from the inputs, then atlas-bot, then the exit status that
# fail-on asks for. Inputs arrive as INPUT_* environment variables, never spliced into the script.
set -uo pipefail

fail() { echo "::error title=atlas-bot::$1"; exit 2; }

case "${INPUT_FAIL_ON:-blocking}" in blocking|never) ;; *) fail "fail-on must be blocking or never, not '${INPUT_FAIL_ON}'" ;; esac
case "${INPUT_FORMAT:-github}" in github|sarif|json|text) ;; *) fail "format must be github, sarif, json or text, not '${INPUT_FORMAT}'" ;; esac

if [ "${INPUT_COMMAND:-check}" = progress ]; then
  atlas-bot progress --repo . --publish
  exit $?
fi
[ "${INPUT_COMMAND:-check}" = check ] || fail "command must be check or progress, not '${INPUT_COMMAND}'"

args=(check --repo . --install-mermaid --format "${INPUT_FORMAT:-github}")
if [ -n "${INPUT_CONFIG:-}" ]; then
  args+=(--config "$INPUT_CONFIG")
fi
if [ -n "${PR_NUMBER:-}" ]; then
  args+=(--base "$BASE_SHA" --head "$HEAD_SHA")
  # A fork's pull request gets a read-only token: the summary and the annotations say it all there.
  if [ "${INPUT_REVIEW:-true}" = true ] && [ "${SAME_REPOSITORY:-false}" = true ]; then
    args+=(--review "$PR_NUMBER")
  fi
else
  args+=(--all)
fi

if [ "${INPUT_FORMAT:-github}" = sarif ]; then
  atlas-bot "${args[@]}" > atlas-bot.sarif
  status=$?
  echo "sarif-file=atlas-bot.sarif" >> "${GITHUB_OUTPUT:-/dev/null}"
else
  atlas-bot "${args[@]}"
  status=$?
fi

# 1: a blocking gate failed; 2: usage, configuration or environment (always a failure).
if [ "$status" -eq 1 ] && [ "${INPUT_FAIL_ON:-blocking}" = never ]; then
  exit 0
fi
exit "$status"
