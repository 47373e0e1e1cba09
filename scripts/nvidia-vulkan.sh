# Sourced on the GPU machine after .gpu-pack/prologue.sh (scripts/gpu-check.sh, v2-lease.sh run): makes
# the Vulkan loader find NVIDIA's driver, and says what the machine has when it cannot. A CUDA container
# gets the driver's Vulkan half only with the "graphics" capability (NVIDIA_DRIVER_CAPABILITIES): without
# it, libGLX_nvidia (the driver's Vulkan entry points) and its ICD file are not mounted, and WebGPU finds
# no adapter. The prologue looks for the ICD file in two places; this looks in the loader's other places,
# and where the file is missing but the library is there, writes an ICD file that names it. A driver list
# already given (VK_DRIVER_FILES whose files all exist, or VK_ICD_FILENAMES) is left as it is.
# VK_SEARCH_ROOT prefixes every folder it looks in (tests give it a fake machine).

nvidia_vulkan_icd() {
  local root=${VK_SEARCH_ROOT:-} d f
  for d in /etc/vulkan/icd.d /usr/share/vulkan/icd.d /usr/local/share/vulkan/icd.d \
    /usr/local/nvidia/share/vulkan/icd.d /usr/local/nvidia/etc/vulkan/icd.d; do
    for f in "$root$d"/nvidia_icd*.json; do
      [ -f "$f" ] && { echo "$f"; return 0; }
    done
  done
  return 1
}

# The first of the driver's libraries whose name begins with $1 (libGLX_nvidia.so.0; the SPIR-V compiler
# is libnvidia-glvkspirv.so.<driver version>): the linker's cache, then the usual folders.
nvidia_library() {
  local root=${VK_SEARCH_ROOT:-} p f
  p=$({ ldconfig -p 2> /dev/null || true; } | awk -v lib="$1" 'index($1, lib) == 1 { print $NF; exit }')
  [ -n "$p" ] && { echo "$p"; return 0; }
  for p in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    for f in "$root$p/$1"*; do
      [ -e "$f" ] && { echo "$f"; return 0; }
    done
  done
  return 1
}

# Whether every file of a colon-separated driver list exists.
nvidia_vulkan_listed() {
  local f
  [ -n "$1" ] || return 1
  local IFS=:
  for f in $1; do [ -f "$f" ] || return 1; done
}

if [ -z "${VK_ICD_FILENAMES:-}" ] && ! nvidia_vulkan_listed "${VK_DRIVER_FILES:-}"; then
  if icd=$(nvidia_vulkan_icd); then
    export VK_DRIVER_FILES=$icd
  elif glx=$(nvidia_library libGLX_nvidia.so.0); then
    icd=${TMPDIR:-/tmp}/search-r3-nvidia_icd.json
    printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s", "api_version": "1.3.0"}}\n' \
      "$glx" > "$icd"
    export VK_DRIVER_FILES=$icd
    echo "Vulkan: no NVIDIA ICD file; wrote $icd for $glx"
  fi
fi
nvidia_vulkan_libraries=""
for lib in libGLX_nvidia.so.0 libnvidia-glvkspirv.so libnvidia-gpucomp.so libcuda.so.1; do
  if nvidia_library "$lib" > /dev/null; then
    nvidia_vulkan_libraries+=" $lib"
  else
    nvidia_vulkan_libraries+=" ($lib missing)"
  fi
done
echo "Vulkan ICD: ${VK_DRIVER_FILES:-${VK_ICD_FILENAMES:-none found}};" \
  "NVIDIA_DRIVER_CAPABILITIES=${NVIDIA_DRIVER_CAPABILITIES:-unset}; driver libraries:$nvidia_vulkan_libraries"
unset nvidia_vulkan_libraries lib icd glx
unset -f nvidia_vulkan_icd nvidia_library nvidia_vulkan_listed
