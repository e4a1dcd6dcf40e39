"""Small pieces shared by every part of the package: atomic output writes (`atomic_writes`), the accelerate
process state (`processes`), the sha256 of files and bytes (`hashing`) and the process rank and count
(`distributed`)."""
