#!/bin/sh
# Installs the Debian packages named as arguments when some are missing.
# As root: apt-get installs them. Otherwise: prints the command and fails.
missing=""
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "relud: missing Debian packages:$missing" >&2
  echo "  run: sudo apt-get install -y$missing" >&2
  exit 1
fi
echo "relud: installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $missing >/dev/null
