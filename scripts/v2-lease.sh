#!/usr/bin/env bash
# The default model v2 on a GPU machine lent for minutes (docs/default-model-v2.md): what travels there,
# the command that runs there, and what comes back.
#
#   bash scripts/v2-lease.sh prepare           here: corpus and tokenizer (CPU), then .lease/ (what travels)
#                                               and the travel size against the 64 MiB that one call may send
#   bash scripts/v2-lease.sh run <seconds>      there, after `source .gpu-pack/prologue.sh`: the recipe on
#                                               WebGPU within <seconds>, then what it made into $OUT
#   bash scripts/v2-lease.sh land <folder>      here: what came back (<folder> holds v2.tar.part-*) into the
#                                               work folder; then `recipe default --profile gpu` finishes here
#   bash scripts/v2-lease.sh rehearse [<s>]     here: a prepared lease run in a copy of what a call sends,
#                                               with node only from the pack, then landed (test it before a lease)
#
# Environment: V2_WORK (default work/v2), V2_DATA (default ../shared/data; here only), V2_PROFILE (default gpu;
# tiny rehearses the whole round trip on lavapipe in minutes), V2_LEASE (default .lease: what travels, ignored
# by git), V2_PACK_SECONDS (default 40: the time the run keeps back to pack what it made), V2_ASSUMED_RATE=1
# (prepare the gpu profile before bench:sizing has measured the GPU: see prepare), V2_UNTIL (the last step a
# run takes, default package), V2_XZ_LEVEL (default 9, the smallest archives; 1 compresses about five times
# faster, a quarter larger).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${V2_WORK:-work/v2}
PROFILE=${V2_PROFILE:-gpu}
LEASE=${V2_LEASE:-.lease}
XZ_LEVEL=${V2_XZ_LEVEL:-9}
CLI=dist/src/cli/main.js
# the CLI modules of the commands the recipe runs there (lm, mine, stage 1 and 2, package)
DEVICE_COMMANDS="recipe train mine"
DIE_PREFIX=v2-lease
# shellcheck source=scripts/lease-travel.sh
source "$(dirname "$0")/lease-travel.sh"
case $XZ_LEVEL in [0-9]) ;; *) die "V2_XZ_LEVEL must be a digit, 0 to 9 (got '$XZ_LEVEL')" ;; esac
# what may come back from a call: 8 files of at most 16 MiB, 64 MiB in all
PART_BYTES=$((15 * MIB))
BACK_LIMIT=$((60 * MIB))

# The paths the call must carry, besides the tree: node and Dawn (the pack), the built CLI, and .lease/.
# OpenBLAS (the native CPU backend) stays behind: on the GPU machine the CPU only tokenizes and mines.
carry_paths() {
  printf '%s\n' .gpu-pack/prologue.sh .gpu-pack/node.xz .gpu-pack/node_modules.tar.xz dist/src "$LEASE"
  ls .gpu-pack/debs/libvulkan1_*.deb
}

# xz_tar <archive> <tar arguments>...: tar's stream of the arguments, xz compressed, unless the archive already
# holds that very stream (its MD5, names and modification times included, is kept beside it): the next lease's
# prepare would otherwise spend most of its time compressing the same datasets and packages again.
xz_tar() {
  local archive=$1 sum
  shift
  sum=$(tar cf - "$@" | md5sum | cut -c1-32)
  if [ -f "$archive" ] && [ "$(cat "$archive.md5" 2> /dev/null)" = "$sum" ]; then
    echo "${archive##*/}: unchanged since the last prepare, kept"
    return
  fi
  rm -f "$archive" "$archive.md5"
  tar cf - "$@" | xz "-$XZ_LEVEL" -T2 > "$archive.partial"
  mv "$archive.partial" "$archive"
  echo "$sum" > "$archive.md5"
}

prepare() {
  [ -f "$CLI" ] || die "dist/ is missing: run npm run build"
  local data=${V2_DATA:-../shared/data}
  # the gpu profile's shape and step counts follow from the GPU's measured training rates; on the assumed
  # one a lease may end before pretraining does, and a run's size must not change between its leases
  if [ "$PROFILE" = gpu ] && [ "${V2_ASSUMED_RATE:-0}" != 1 ]; then
    local measured
    measured=$(node dist/scripts/lease-queries.js measured) ||
      die "dist/scripts/lease-queries.js did not load: npm run build"
    [ "$measured" = true ] ||
      die "the gpu profile is sized from an assumed rate: run bash scripts/gpu-check.sh on the GPU machine" \
        "first and put its GPU_BUDGET.measured line in src/recipe/recipe-profiles.ts (docs/default-model-v2.md);" \
        "V2_ASSUMED_RATE=1 prepares anyway"
  fi
  node "$CLI" recipe default --profile "$PROFILE" --work "$WORK" --data "$data" --until tokenizer
  # the archives an earlier prepare made stay for xz_tar to reuse; the rest of the lease is made anew
  mkdir -p "$LEASE"
  find "$LEASE" -mindepth 1 -maxdepth 1 ! -name '*.tar.xz' ! -name '*.tar.xz.md5' -exec rm -rf {} +
  # the corpus's manifest (the card lists every source), valid split, the shards pretraining reads and
  # whatever else the corpus step wrote; the tokenizer; the run's record, so its times carry on
  local shards
  shards=$(node dist/scripts/lease-queries.js shards "$WORK" "$data" "$PROFILE") ||
    die "the $PROFILE profile's pretraining shards are unknown (above)"
  local others steps
  others=$(cd "$WORK" && find corpus -maxdepth 1 -type f ! -name 'train-*.jsonl' | sort)
  # a run that an earlier lease took past pretraining continues from the f16 folders it brought back
  # (the recipe there counts a step done by its output): no shards then
  local half
  half="$(cd "$LEASE" && pwd)/half"
  rm -rf "$half"
  if [ -f "$WORK/lm/final/config.json" ]; then
    steps=lm/final
    [ -d "$WORK/mined" ] && steps="$steps mined"
    shards=
    # a stage-1 final/ that came back in f32 (its lease ended before packaging) travels in f16, as a
    # packaged one does: the f32 folder is too large to travel beside the rest
    if [ -f "$WORK/stage1/final/config.json" ]; then
      mkdir -p "$half/stage1"
      node dist/scripts/lease-queries.js f16 "$WORK/stage1/final" "$half/stage1/final" ||
        die "$WORK/stage1/final could not be written in f16 (above)"
    fi
  fi
  local -a converted=()
  [ -d "$half" ] && converted=(-C "$half" stage1/final)
  # shellcheck disable=SC2086
  xz_tar "$LEASE/work.tar.xz" -C "$WORK" recipe.json tokenizer $others $shards ${steps:-} "${converted[@]}"
  rm -rf "$half"
  [ -d "$WORK/stage1/final" ] && [ -n "${steps:-}" ] && steps="$steps stage1/final (f16)"
  # the datasets' files the training steps read, as the profile's configs name them (training-data-files.ts)
  node dist/scripts/lease-queries.js data-files "$WORK" "$data" "$PROFILE" > "$LEASE/data-files.txt" ||
    die "the $PROFILE profile's dataset files are unknown (above)"
  xz_tar "$LEASE/data.tar.xz" -C "$data" -T "$LEASE/data-files.txt"
  # the npm packages the commands that run there import (webgpu comes with .gpu-pack); this platform's
  # prebuilt addons only, without the C/C++ sources they were built from
  local packages
  packages=$(node dist/scripts/runtime-packages.js "$CLI" $(printf 'dist/src/cli/%s.js ' $DEVICE_COMMANDS))
  # shellcheck disable=SC2046
  xz_tar "$LEASE/node_modules.tar.xz" --exclude='*/prebuilds/darwin*' --exclude='*/prebuilds/win32*' \
    --exclude='*/prebuilds/linux-arm*' --exclude='*.[ch]' --exclude='*.[ch]pp' $(printf 'node_modules/%s ' $packages)
  echo "$PROFILE" > "$LEASE/profile"

  if [ ! -f .gpu-pack/prologue.sh ]; then
    echo "the travel size needs .gpu-pack/: bash ../shared/tools/offline-gpu/pack.sh webgpu, then prepare again"
    return
  fi
  echo "work: $(mib "$(bytes "$LEASE/work.tar.xz")") ($(echo $shards | wc -w) shards${steps:+; $steps}); data:" \
    "$(mib "$(bytes "$LEASE/data.tar.xz")") ($(wc -l < "$LEASE/data-files.txt") files); npm packages:" \
    "$(mib "$(bytes "$LEASE/node_modules.tar.xz")") ($(echo $packages | wc -w))"
  # shellcheck disable=SC2046
  travel_check v2-lease $(carry_paths) || exit 1
  echo "carry (the run call's carry argument):"
  # shellcheck disable=SC2046
  carry_json $(carry_paths)
  echo "command: source .gpu-pack/prologue.sh && bash scripts/v2-lease.sh run <seconds: the call's timeout - 30>"
}

# A fingerprint of a file or folder's contents, to send nothing twice from one machine.
fingerprint() { (cd "$WORK" && find "$1" -type f -print0 | sort -z | xargs -0 md5sum | md5sum | cut -c1-32); }

run() {
  local seconds=${1:-}
  [[ "$seconds" =~ ^[0-9]+$ ]] || die "usage: bash scripts/v2-lease.sh run <seconds>"
  [ -n "${OUT:-}" ] || die "\$OUT is not set: this runs on the device machine, whose \$OUT comes back"
  command -v node > /dev/null || die "no node: source .gpu-pack/prologue.sh first"
  [ -f "$LEASE/work.tar.xz" ] || die "$LEASE/ did not travel: prepare here, and carry it"
  local started=$SECONDS profile
  # shellcheck source=scripts/nvidia-vulkan.sh
  source scripts/nvidia-vulkan.sh
  # the GPU first: where WebGPU finds no adapter or computes wrong, the lease's time is not spent unpacking
  timeout -k 5 30 node "$CLI" device --device webgpu ||
    die "WebGPU is not usable on this machine (above); nothing was run"
  profile=$(cat "$LEASE/profile")
  # unpacked once per machine: a second call on the warm machine continues the first one's work
  local stamp
  stamp=$(md5sum "$LEASE"/*.tar.xz | md5sum | cut -c1-32)
  if [ "$(cat "$WORK/.lease-stamp" 2> /dev/null)" != "$stamp" ]; then
    rm -rf "$WORK" "$LEASE/data" && mkdir -p "$WORK" "$LEASE/data"
    xz -dc "$LEASE/work.tar.xz" | tar xf - -C "$WORK"
    xz -dc "$LEASE/data.tar.xz" | tar xf - -C "$LEASE/data"
    # beside what the pack's prologue unpacked; packages already installed are left as they are
    xz -dc "$LEASE/node_modules.tar.xz" | tar xf - --skip-old-files
    echo "$stamp" > "$WORK/.lease-stamp"
    echo "unpacked: $(du -sh "$WORK" | cut -f1) of work, $(du -sh "$LEASE/data" | cut -f1) of data"
  fi
  local budget=$((seconds - ${V2_PACK_SECONDS:-40} - (SECONDS - started)))
  [ "$budget" -gt 30 ] || die "$seconds s leave no time to train after unpacking and before packing"
  set +e
  node "$CLI" recipe default --profile "$profile" --device webgpu --work "$WORK" --data "$LEASE/data" \
    --out "$WORK/out" --until "${V2_UNTIL:-package}" --session-seconds "$budget" 2>&1 | tee "$OUT/recipe.log"
  local rc=${PIPESTATUS[0]}
  set -e
  echo "recipe exit $rc (75: stopped at the session's time, continue with another run)"
  send_back
  return "$rc"
}

# What the run made, as it lands here. A stage's packaged (f16) folder takes its final/ place; a stage that
# finished before the package step sends its own final/ (f32) instead, so that a session ending in stage 2,
# or before packaging, loses no finished stage. lm/final first: the recipe here counts pretraining done by it.
send_back() {
  local -a items=() names=()
  local item name
  local stage1=stage1/final stage2=stage2/final
  [ -f "$WORK/models/stage1/config.json" ] && stage1=models/stage1
  [ -f "$WORK/out/config.json" ] && stage2=out
  for pair in recipe.json:recipe.json configs:configs lm/metrics.jsonl:lm/metrics.jsonl lm/final:lm/final \
    mined:mined stage1/metrics.jsonl:stage1/metrics.jsonl stage1/report.html:stage1/report.html \
    "$stage1:stage1/final" stage2/metrics.jsonl:stage2/metrics.jsonl stage2/report.html:stage2/report.html \
    "$stage2:stage2/final"; do
    item=${pair%%:*} name=${pair#*:}
    [ -e "$WORK/$item" ] || continue
    items+=("$item") names+=("$name")
  done
  local sent="$WORK/.lease-sent" total=0 size fp
  # fingerprints become "sent" only once their tar is written: a run cut before that sends them again
  touch "$sent" && rm -f "$sent.new"
  local -a send=() transform=()
  for i in "${!items[@]}"; do
    item=${items[$i]}
    fp="$item $(fingerprint "$item")"
    if grep -qxF "$fp" "$sent"; then continue; fi
    size=$(bytes "$WORK/$item")
    if [ $((total + size)) -gt "$BACK_LIMIT" ]; then
      echo "not sent this time: $item ($(mib "$size")); run again at once to send it"
      continue
    fi
    total=$((total + size))
    send+=("$item")
    echo "$fp" >> "$sent.new"
    [ "$item" != "${names[$i]}" ] && transform+=(--transform "s,^$item\(/\|$\),${names[$i]}\1,")
  done
  [ ${#send[@]} -gt 0 ] || {
    echo "nothing new to send"
    return
  }
  tar cf - -C "$WORK" "${transform[@]}" "${send[@]}" | split -b "$PART_BYTES" - "$OUT/v2.tar.part-"
  cat "$sent.new" >> "$sent" && rm -f "$sent.new"
  echo "sent $(mib "$total"): ${send[*]}"
  ls -l "$OUT"
}

land() {
  local from=${1:-}
  [ -n "$from" ] && compgen -G "$from/v2.tar.part-*" > /dev/null || die "usage: land <folder with v2.tar.part-*>"
  mkdir -p "$WORK"
  cat "$from"/v2.tar.part-* | tar xvf - -C "$WORK" | cut -d/ -f1-2 | sed 's,/$,,' | sort -u |
    sed 's/^/landed: /'
  local recipe
  recipe="node $CLI recipe default --profile $(cat "$LEASE/profile" 2> /dev/null || echo "$PROFILE") --work $WORK"
  if [ ! -f "$WORK/lm/final/config.json" ]; then
    echo "v2-lease: $WORK has no lm/final: the recipe here would pretrain again; land that call's parts first"
  elif [ ! -f "$WORK/stage2/final/config.json" ]; then
    local missing=stage2
    [ -f "$WORK/stage1/final/config.json" ] || missing="stage1 and stage2"
    echo "$missing did not finish there. Either the next lease continues (bash scripts/v2-lease.sh prepare," \
      "which carries what came back), or the recipe here trains it on the CPU (slowly): $recipe --out <model folder>"
  else
    echo "next, here (package, demo-vectors, evaluate, card): $recipe --out <model folder>"
  fi
}

# The round trip on this machine, before a lease spends minutes finding what is missing: a copy of exactly
# what a call sends (the tree, the carried paths; no node_modules, no build/Release), run with node only
# from the pack, as on the GPU machine, and with its own $OUT; then landed here.
rehearse() {
  local seconds=${1:-600} sim
  [ -f "$LEASE/work.tar.xz" ] || die "nothing to rehearse: prepare first"
  sim=$(mktemp -d /tmp/v2-lease-rehearsal.XXXXXX)
  mkdir -p "$sim/repo" "$sim/out" "$sim/bin"
  git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$sim/repo"
  # shellcheck disable=SC2046
  cp -r --parents -t "$sim/repo" $(carry_paths)
  for f in /usr/bin/*; do [ "${f##*/}" = node ] || ln -s "$f" "$sim/bin/"; done
  echo "rehearsal in $sim: $(du -sh "$sim/repo" | cut -f1) sent"
  # the lease as carried: an absolute V2_LEASE arrives under the copy's root, as cp --parents put it
  (cd "$sim/repo" && env -i HOME="$HOME" PATH="$sim/bin" OUT="$sim/out" V2_LEASE="${LEASE#/}" \
    ${V2_UNTIL:+V2_UNTIL="$V2_UNTIL"} ${V2_PACK_SECONDS:+V2_PACK_SECONDS="$V2_PACK_SECONDS"} \
    bash -c "source .gpu-pack/prologue.sh && bash scripts/v2-lease.sh run $seconds")
  land "$sim/out"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run "${2:-}" ;;
  land) land "${2:-}" ;;
  rehearse) rehearse "${2:-}" ;;
  *) die "usage: bash scripts/v2-lease.sh prepare | run <seconds> | land <folder> | rehearse [<seconds>]" ;;
esac
