# shellcheck shell=bash
# kubetune_venv EXTRA: make $KUBETUNE_VENV a virtualenv with kubetune[EXTRA] installed.
#
# The dependencies (torch alone is several GB) go into a venv cached under the user cache
# directory, keyed by a digest of the pinned requirements, so a fresh clone reuses it and a
# changed pin builds a new one. The checkout itself is installed editable on top, which takes
# seconds, so the venv always runs the code of the checkout that called it.
kubetune_venv() {
  local extra="$1"
  local repo
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  local cache="${XDG_CACHE_HOME:-$HOME/.cache}/kubetune"
  local python="${KUBETUNE_PYTHON:-python3}"
  mkdir -p "$cache"
  local reqs
  reqs="$("$python" "$repo/hack/lib/requirements.py" "$repo/pyproject.toml" "$extra")"
  local key
  key="$(printf '%s\n' "$reqs" "$("$python" -c 'import sys; print(sys.version)')" | sha256sum | cut -c1-16)"
  export KUBETUNE_VENV="$cache/venv-$extra-$key"
  (
    flock 9
    if [ ! -f "$KUBETUNE_VENV/.complete" ]; then
      echo "kubetune: creating $KUBETUNE_VENV (first run: a few minutes, torch is large)" >&2
      rm -rf "$KUBETUNE_VENV"
      "$python" -m venv "$KUBETUNE_VENV"
      "$KUBETUNE_VENV/bin/pip" install -q --disable-pip-version-check "setuptools==84.2.1" wheel
      # torch first: otherwise a dependency may pull a different torch build than the pinned one.
      local torch
      torch="$(printf '%s\n' "$reqs" | grep -E '^torch==' || true)"
      if [ -n "$torch" ]; then
        "$KUBETUNE_VENV/bin/pip" install -q --disable-pip-version-check "$torch"
      fi
      printf '%s\n' "$reqs" | "$KUBETUNE_VENV/bin/pip" install -q --disable-pip-version-check -r /dev/stdin
      touch "$KUBETUNE_VENV/.complete"
    fi
    if [ "$(cat "$KUBETUNE_VENV/.checkout" 2>/dev/null)" != "$repo" ]; then
      "$KUBETUNE_VENV/bin/pip" install -q --disable-pip-version-check --no-deps \
        --no-build-isolation -e "$repo"
      echo "$repo" > "$KUBETUNE_VENV/.checkout"
    fi
  ) 9>"$cache/venv.lock"
}
