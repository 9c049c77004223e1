// Turn the runtime options of a LIFParams into compile-time constants, so that each kernel
// is instantiated per variant and its inner loop carries no branch on the variant.
#pragma once

#include "snnfast/neuron.h"

// SNNFAST_RESET_SWITCH(p.reset, R, [&] { run<R>(p); });
#define SNNFAST_RESET_SWITCH(VALUE, NAME, ...)                                  \
  [&] {                                                                         \
    switch (VALUE) {                                                            \
      case ::snnfast::Reset::Hard: {                                            \
        constexpr ::snnfast::Reset NAME = ::snnfast::Reset::Hard;               \
        return __VA_ARGS__();                                                   \
      }                                                                         \
      case ::snnfast::Reset::Soft: {                                            \
        constexpr ::snnfast::Reset NAME = ::snnfast::Reset::Soft;               \
        return __VA_ARGS__();                                                   \
      }                                                                         \
      default: {                                                                \
        constexpr ::snnfast::Reset NAME = ::snnfast::Reset::None;               \
        return __VA_ARGS__();                                                   \
      }                                                                         \
    }                                                                           \
  }()

// SNNFAST_SURROGATE_SWITCH(p.surrogate, S, [&] { run<S>(p); });
#define SNNFAST_SURROGATE_SWITCH(VALUE, NAME, ...)                              \
  [&] {                                                                         \
    switch (VALUE) {                                                            \
      case ::snnfast::Surrogate::Rectangle: {                                   \
        constexpr ::snnfast::Surrogate NAME = ::snnfast::Surrogate::Rectangle;  \
        return __VA_ARGS__();                                                   \
      }                                                                         \
      case ::snnfast::Surrogate::Triangle: {                                    \
        constexpr ::snnfast::Surrogate NAME = ::snnfast::Surrogate::Triangle;   \
        return __VA_ARGS__();                                                   \
      }                                                                         \
      case ::snnfast::Surrogate::Sigmoid: {                                     \
        constexpr ::snnfast::Surrogate NAME = ::snnfast::Surrogate::Sigmoid;    \
        return __VA_ARGS__();                                                   \
      }                                                                         \
      default: {                                                                \
        constexpr ::snnfast::Surrogate NAME = ::snnfast::Surrogate::ATan;       \
        return __VA_ARGS__();                                                   \
      }                                                                         \
    }                                                                           \
  }()
