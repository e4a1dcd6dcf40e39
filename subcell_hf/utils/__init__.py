"""Small pieces shared by every part of the package: atomic output writes (`atomic_writes`), the accelerate
process state (`processes`), hashing and process-count helpers (`helpers`)."""
