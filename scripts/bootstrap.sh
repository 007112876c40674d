#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv. Idempotent and quick when
# nothing changed: it reinstalls only when pyproject.toml differs from the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3 python3.13 python3.12 python3.11; do
    if command -v "$c" >/dev/null && "$c" -c "import sys; sys.exit(sys.version_info < (3, 11))" 2>/dev/null; then
      PY=$c; break
    fi
  done
fi
[ -n "$PY" ] || { echo "bootstrap: Python >= 3.11 is required" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.mebuku-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing mebuku and its dependencies into .venv" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  echo "$want" > "$stamp"
fi

# Nice to have: a Japanese font for the council's PDF report and pdftoppm to look at it.
# Best effort; without them the report falls back to reportlab's built-in CID font.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
   && ! { [ -d /usr/share/fonts/opentype/ipaexfont-gothic ] && command -v pdftoppm >/dev/null; }; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-ipaexfont-gothic poppler-utils; } \
    >/dev/null 2>&1 || echo "bootstrap: optional fonts-ipaexfont-gothic/poppler-utils not installed" >&2
fi

# Servers the tests and the demo start privately (Debian/Ubuntu names).
missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing ${missing[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "bootstrap: please install: ${missing[*]}" >&2; exit 1
  fi
fi
