#!/usr/bin/env bash
# The most likely next token and its probability, from the JSON, with jq.
set -euo pipefail
tracegpt trace "${1:-I love}" --json | jq -r '.next_token.top[0] | "\(.text|@json) \(.prob)"'
# Every stage's name and the L2 norm at the focus position, one per line:
tracegpt trace "${1:-I love}" --json | jq -r '.stages[] | select(.focus_norm != null) | "\(.name)\t\(.focus_norm)"' | head -n 5
