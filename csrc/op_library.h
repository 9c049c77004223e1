// The namespace the op schemas are defined in: torch.ops.snnfast, or the namespace the test
// build of the emulated CUDA device gives (-DSNNFAST_OPS=snnfast_emulated, see
// tests/emulated_cuda.py), which compiles this glue a second time beside the emulated kernels.
#pragma once

#include <torch/library.h>

#ifndef SNNFAST_OPS
#define SNNFAST_OPS snnfast
#endif

// One more level of macro so that SNNFAST_OPS is expanded before TORCH_LIBRARY pastes it.
#define SNNFAST_LIBRARY_EXPAND(ns, m) TORCH_LIBRARY(ns, m)
#define SNNFAST_LIBRARY_FRAGMENT_EXPAND(ns, m) TORCH_LIBRARY_FRAGMENT(ns, m)
#define SNNFAST_LIBRARY(m) SNNFAST_LIBRARY_EXPAND(SNNFAST_OPS, m)
#define SNNFAST_LIBRARY_FRAGMENT(m) SNNFAST_LIBRARY_FRAGMENT_EXPAND(SNNFAST_OPS, m)
