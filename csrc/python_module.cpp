// Lets `import snnfast._C` load the library, whose static initialisers register the ops
// (TORCH_LIBRARY). The module itself is empty: every entry point is a torch op.
#include <Python.h>

extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
}
