"""Empty stub for cv2 (OpenCV).  Upstream scene/dataset_readers.py imports cv2 at module
level but only uses it when reading real datasets; the harness replaces the dataset
reader, so no cv2 function is ever called."""
