#!/usr/bin/env bash
# Generate the key file for field-level encryption at rest (common/bc_crypt.h).
#
#   gen-keys.sh DIR           writes DIR/field.keys if absent; does nothing
#                             (exit 0) if it exists, so it is safe to run on
#                             every start
#   gen-keys.sh DIR --rotate  adds a fresh encryption key to DIR/field.keys and
#                             makes it the active one; older keys stay so that
#                             values they encrypted still decrypt (restart the
#                             services, then re-encrypt: bc_field_needs_rewrap)
#
# A new file holds one AES-256 encryption key, the active line naming it, and
# a separate blind-index key, each 32 bytes from `openssl rand`, base64. The
# file is mode 0600 (the services refuse anything group or others can read)
# and DIR, when created here, 0700. The file is written beside its final name
# and linked into place, so a reader never sees half a file and two runs at
# once cannot both create it. Point the setting field_keys_file at the file.
#
# The keys protect Medicaid IDs, SSNs and note text: keep the file out of the
# database, out of database backups and out of version control, and back it
# up separately -- without it the encrypted columns cannot be read.
set -euo pipefail

dir=${1:?usage: gen-keys.sh DIR [--rotate]}
mode=${2:-}
file="$dir/field.keys"

case "$mode" in
  ""|--rotate) ;;
  *) echo "gen-keys: unknown option '$mode' (usage: gen-keys.sh DIR [--rotate])" >&2; exit 2 ;;
esac

if [ -z "$mode" ] && { [ -e "$file" ] || [ -L "$file" ]; }; then
  exit 0
fi
if [ "$mode" = --rotate ] && [ ! -f "$file" ]; then
  echo "gen-keys: $file does not exist; run gen-keys.sh $dir first" >&2
  exit 1
fi

command -v openssl >/dev/null 2>&1 || { echo "gen-keys: openssl not found (run deploy/install-deps.sh)" >&2; exit 1; }

umask 077
if [ ! -d "$dir" ]; then
  mkdir -p "$dir"
  chmod 0700 "$dir"
fi

# 32 random bytes as one line of padded base64 (44 characters).
new_key() {
  local k
  k=$(openssl rand -base64 32)
  [ ${#k} -eq 44 ] || { echo "gen-keys: openssl rand gave an unexpected key" >&2; exit 1; }
  printf '%s' "$k"
}

# A key id not yet in the file: k<UTC date>, then k<UTC date>-2, -3, ...
new_id() {
  local base id n=1
  base="k$(date -u +%Y%m%d)"
  id=$base
  while [ -f "$file" ] && grep -Eq "^[[:space:]]*key[[:space:]]+$id[[:space:]]" "$file"; do
    n=$((n + 1))
    id="$base-$n"
  done
  printf '%s' "$id"
}

tmp=$(mktemp "$dir/.field.keys.XXXXXX")
trap 'rm -f "$tmp"' EXIT
chmod 0600 "$tmp"
id=$(new_id)

if [ -z "$mode" ]; then
  enc_key=$(new_key)
  index_key=$(new_key)
  {
    echo "# Beacon field encryption keys (format: common/bc_crypt.h)."
    echo "# Created $(date -u +%Y-%m-%dT%H:%M:%SZ) by deploy/gen-keys.sh. Keep mode 0600, out of"
    echo "# the database and its backups; losing this file loses the encrypted values."
    echo "key $id $enc_key"
    echo "active $id"
    echo "index $index_key"
  } >"$tmp"
  unset enc_key index_key
  # ln refuses to replace an existing name: whoever links first wins.
  if ! ln "$tmp" "$file" 2>/dev/null; then
    [ -e "$file" ] && exit 0
    echo "gen-keys: could not create $file" >&2
    exit 1
  fi
  echo "gen-keys: wrote $file (active key $id)" >&2
  exit 0
fi

# --rotate: the file with the new key inserted before the active line and the
# active line pointing at it; everything else kept as it was.
[ "$(grep -Ec '^[[:space:]]*active[[:space:]]' "$file")" -eq 1 ] ||
  { echo "gen-keys: $file must have exactly one active line to rotate" >&2; exit 1; }
# The key goes to awk through its environment, not its argv: the command
# line of a running process is visible to every user.
key=$(new_key)
GEN_KEYS_NEW_KEY=$key awk -v id="$id" -v now="$(date -u +%Y-%m-%dT%H:%M:%SZ)" '
  /^[[:space:]]*active[[:space:]]/ {
    print "# Added " now " by deploy/gen-keys.sh --rotate."
    print "key " id " " ENVIRON["GEN_KEYS_NEW_KEY"]
    print "active " id
    next
  }
  { print }
' "$file" >"$tmp"
unset key
mv -f "$tmp" "$file"
echo "gen-keys: added key $id to $file and made it active" >&2
