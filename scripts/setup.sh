#!/usr/bin/env bash
# One command that installs everything search-r3 needs on a fresh Debian machine:
# OpenBLAS (native backend), PyTorch (gradient oracle and speed peer for tests/benchmarks), the Debian
# text packages the pretraining corpus draws on (dictionaries and manuals, each under a free licence that
# src/train/lm/debian-text.ts records; the dict-* packages pull in the dictd server, which stays unused),
# Chromium and a font (the web pages' tests drive it headless through playwright-core, which downloads
# no browser), Redis (the job queue of distributed indexing, started by its tests on a free port),
# Mesa's Vulkan driver for the CPU (lavapipe) from bookworm-backports: the WebGPU backend's tests run on
# it (Dawn refuses bookworm's own Mesa 22), then npm packages, then the TypeScript build (so
# `npx search-r3 demo` works right after).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# bookworm-backports on the mirror this machine already uses, unless apt knows the suite already.
. /etc/os-release
if [ "${VERSION_CODENAME:-}" = bookworm ] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -E "^(URIs:|deb )" | grep -oE "https?://[^ ]+/debian/?( |$)" | grep -v security | head -n1 || true)
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
    "${MIRROR:-http://deb.debian.org/debian}" /usr/share/keyrings/debian-archive-keyring.gpg \
    | $SUDO tee /etc/apt/sources.list.d/search-r3-backports.sources >/dev/null
fi
$SUDO apt-get update -qq
# PostgreSQL's manual is packaged per major version (postgresql-doc-15 on bookworm): the newest one apt has
PGDOC=$(apt-cache pkgnames postgresql-doc- | grep -E '^postgresql-doc-[0-9]+$' | sort -V | tail -n1 || true)
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential python3 libopenblas-dev python3-torch python3-numpy \
  jargon-text debian-reference-en dict-gcide dict-foldoc dict-devil wordnet-base perl-doc ${PGDOC:-postgresql-doc} \
  debian-handbook python3-doc debian-policy developers-reference gnu-standards \
  chromium fonts-dejavu-core redis-server >/dev/null
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
  $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
else
  $SUDO apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
fi
npm ci
npm run build
