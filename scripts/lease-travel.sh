# Sourced by the scripts that prepare a call to the GPU machine (gpu-check.sh, v2-lease.sh): what a call
# sends is the tree (tracked and untracked-not-ignored files) plus the paths it carries, at most 64 MiB.
MIB=$((1024 * 1024))
# the device tool's limit; LEASE_SEND_LIMIT_MIB where it says another (or where, as in the lease test, what is
# checked is not the size)
SEND_LIMIT=$((${LEASE_SEND_LIMIT_MIB:-64} * MIB))

bytes() { du -cb "$@" 2>/dev/null | tail -1 | cut -f1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
# one sentence on stderr, prefixed with the sourcing script's DIE_PREFIX, then exit 1
die() {
  echo "${DIE_PREFIX:-lease}: $*" >&2
  exit 1
}

# travel_check <branch> <carried path>...: prints the size a call sends; over the limit, it prints how a
# branch without the shipped model and the demo data (which no GPU call reads) brings it under, and fails.
travel_check() {
  local branch=$1 tree carried total shipped
  shift
  tree=$(git ls-files -co --exclude-standard -z | bytes --files0-from=-)
  carried=$(bytes "$@")
  total=$((tree + carried))
  echo "travels: tree $(mib "$tree") + carried $(mib "$carried") = $(mib "$total") of $(mib $SEND_LIMIT)"
  [ "$total" -le "$SEND_LIMIT" ] && return 0
  shipped=$(git ls-files -z models demo | bytes --files0-from=-)
  echo "$(mib $((total - SEND_LIMIT))) too much to send. The shipped model and demo data ($(mib "$shipped"))" \
    "need not travel: git switch -c $branch && git rm -rq models/search-r3-default demo && git commit -m" \
    "'$branch: the tree without the shipped model', then prepare again (git switch main after the call)" >&2
  return 1
}

# carry_json <path>...: the paths as the run call's carry argument
carry_json() { printf '%s\n' "$@" | node -e 'console.log(JSON.stringify(require("fs").readFileSync(0, "utf8").trim().split("\n")))'; }
