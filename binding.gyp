{
  "targets": [
    {
      "target_name": "search_r3_native",
      "sources": [
        "native/addon.c",
        "native/pool.c",
        "native/gemm.c",
        "native/half.c",
        "native/strided.c",
        "native/elementwise.c",
        "native/reduce.c",
        "native/norm.c",
        "native/softmax.c",
        "native/loss.c",
        "native/attention.c",
        "native/embedding.c",
        "native/optim.c",
        "native/stderr-capture.c",
        "native/signal-watch.c"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-O3", "-march=native", "-fopenmp-simd", "-pthread", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wno-unknown-pragmas"],
      "cflags!": ["-O2", "-O0", "-fno-strict-aliasing"],
      # nodelete: the pool's helper threads (native/pool.c) live for the process, so the addon must stay
      # mapped after the worker thread that loaded it ends (Node unloads an addon with its last environment)
      "ldflags": ["-pthread", "-Wl,-z,nodelete"],
      "libraries": ["-lopenblas", "-lm"]
    }
  ]
}
