#!/usr/bin/env bash
# The browser test drives Debian's Chromium (Playwright's own browser download is not possible
# offline). Install it if it is missing and we may; otherwise say what to do.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null
else
  echo "note: /usr/bin/chromium is missing, so the browser test will be skipped;" \
       "install it with: sudo apt-get install chromium chromium-driver" >&2
fi
