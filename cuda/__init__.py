"""Kernel sources, installed as package data ``gscache._cuda`` (gscache/backends/_loader.py builds them):

common.cuh        the math and parameter structs shared by every build below (each compiles with
                  -I<this folder> and includes it as "common.cuh")
kernels/*.cu      the GPU kernels (backend cuda; backend cuda-sim runs them on the SIMT emulation)
host/host.cpp     the cpu backend's host library (C++ and OpenMP, called through ctypes)
simt/simt.hpp     the SIMT emulation, force-included into the kernels; simt/simt.cpp its runtime
"""
