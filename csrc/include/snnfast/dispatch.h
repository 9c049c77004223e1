// Turn runtime choices (the options of a LIFParams, a flag) into compile-time constants, so
// that each kernel is instantiated per variant and its inner loop carries no branch on the
// variant. The one idiom for such a choice, after mamba's static_switch.h: the body is a
// lambda that sees NAME as a constexpr.
#pragma once

#include "snnfast/neuron.h"

// SNNFAST_BOOL_SWITCH(p.grad_beta != nullptr, kParamGrads, [&] { run<kParamGrads>(p); });
#define SNNFAST_BOOL_SWITCH(COND, NAME, ...)                                    \
  [&] {                                                                         \
    if (COND) {                                                                 \
      constexpr bool NAME = true;                                               \
      return __VA_ARGS__();                                                     \
    } else {                                                                    \
      constexpr bool NAME = false;                                              \
      return __VA_ARGS__();                                                     \
    }                                                                           \
  }()

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
