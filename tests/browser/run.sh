#!/bin/bash
# The web console in headless Chromium (part of make test): tests/browser/console.py. Needs
# Debian's chromium, chromium-driver and python3-selenium. Screenshots of every page go to
# the build folder's screenshots/ (build/screenshots for build/relud). Ends with
# "N passed, N failed".
set -u
cd "$(dirname "$0")"
export RELUD=${RELUD:-$(cd ../.. && pwd)/build/relud}
exec /usr/bin/python3 console.py
