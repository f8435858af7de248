# CPU stub package for the CUDA extension simple_knn (harness only).
