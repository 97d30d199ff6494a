"""The build backend's part that pyproject.toml cannot say: the runner's spawn library.

``src/spad/executors/spawn.c`` becomes ``spad/executors/libspawn.so`` inside the package (the
runner loads it with ctypes). It is a plain C library, not a Python extension, so the wheel is
tagged for the platform only (``py3-none-linux_x86_64``). The build is optional: without a
compiler (an sdist on a bare machine) spad installs all the same and starts tasks through its
slower ``subprocess`` path.
"""

from __future__ import annotations

import os

from setuptools import Extension, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_ext import build_ext


class BuildSpawnLibrary(build_ext):
    def get_ext_filename(self, fullname: str) -> str:
        # No ABI suffix: ctypes loads it by this exact name, whatever the Python.
        return os.path.join(*fullname.split(".")) + ".so"


class PlatformWheel(bdist_wheel):
    def get_tag(self) -> tuple[str, str, str]:
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(
    ext_modules=[
        Extension(
            "spad.executors.libspawn",
            sources=["src/spad/executors/spawn.c"],
            extra_compile_args=["-O2", "-Wall"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": BuildSpawnLibrary, "bdist_wheel": PlatformWheel},
)
