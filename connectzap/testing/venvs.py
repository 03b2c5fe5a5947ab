"""Install a plugin package into a throwaway virtualenv and run its tests there, offline.

The new venv sees this interpreter's installed packages (connectzap, pytest, hatchling...) through a
``.pth`` file, so nothing is downloaded; the plugin itself is built and installed with its entry points, as a
user's ``pip install`` would do it.
"""

from __future__ import annotations

import os
import site
import subprocess
import sysconfig
import textwrap
import venv
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

    def run(self, *args: str | Path, cwd: Path | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``python *args`` in the venv; output is captured as text."""
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CONNECTZAP_"))}
        environment.pop("PYTHONPATH", None)
        environment["PYTHONDONTWRITEBYTECODE"] = "1"  # leave the package's directory as it was
        environment.update(env or {})
        return subprocess.run([str(self.python), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, env=environment, check=False)

    def install(self, package: Path) -> None:
        """``pip install`` the package (built as a wheel, entry points and all) without network:
        no dependencies, no build isolation -- the build backend comes from the parent environment."""
        done = self.run("-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                        "--disable-pip-version-check", package)
        if done.returncode != 0:
            raise RuntimeError(f"pip install {package} failed:\n{done.stdout}\n{done.stderr}")


def site_packages() -> list[str]:
    """This interpreter's site-packages directories."""
    found = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    return sorted(p for p in found if Path(p).is_dir())


def create_venv(root: Path) -> Venv:
    """A venv at ``root`` without pip of its own, seeing this interpreter's packages."""
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(root)
    made = Venv(root)
    target = made.run("-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    # `import site; site.addsitedir(...)` lines also process the .pth files there (editable installs).
    lines = [f"import site; site.addsitedir({path!r})" for path in site_packages()]
    (Path(target) / "zz_connectzap_parent_env.pth").write_text("\n".join(lines) + "\n")
    return made


def fake_distribution(site_dir: Path, dist: str, version: str, module: str, source: str) -> None:
    """Make ``module`` (with ``source``) look installed from distribution ``dist``, with an entry point
    in the ``connectzap`` group, for any interpreter that has ``site_dir`` on its path."""
    (site_dir / f"{module}.py").write_text(textwrap.dedent(source))
    info = site_dir / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[connectzap]\n{module} = {module}\n")


def run_package_tests(venv_: Venv, package: Path, *pytest_args: str, timeout: float = 300) -> \
        subprocess.CompletedProcess[str]:
    """Run ``pytest`` in ``package`` with the venv's interpreter."""
    return venv_.run("-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *pytest_args,
                     cwd=package, timeout=timeout)


__all__ = ["Venv", "create_venv", "fake_distribution", "run_package_tests", "site_packages"]
