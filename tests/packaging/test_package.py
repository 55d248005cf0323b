"""The Debian package: built from the tree by packaging/make-deb (what `make package` runs, lintian
included), its unit verified by systemd-analyze, installed into scratch roots with
`dpkg --root`, its binary and shipped configuration run, then removed and purged.

Needs root (dpkg --root, files owned by root). Packages what build/default has built; builds
nothing.
Run: DBWARDEN_BUILD_DIR=build/default DBWARDEN_SOURCE_DIR=. /usr/bin/python3 -m unittest \
         tests/packaging/test_package.py -v
"""

import gzip
import os
import shutil
import stat
import subprocess
import tempfile
import unittest
from pathlib import Path

import yaml

SOURCE = Path(os.environ.get("DBWARDEN_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUILD = Path(os.environ.get("DBWARDEN_BUILD_DIR", SOURCE / "build" / "default"))
UNIT = "usr/lib/systemd/system/dbwarden.service"
CONFFILE = "etc/dbwarden/dbwarden.yaml"

# Every regular file the package ships, with its mode. A file added to the package without
# being added here fails test_contents: say what it is and where it goes first.
EXPECTED_FILES = {
    "etc/dbwarden/dbwarden.yaml": 0o640,
    "usr/bin/dbwarden": 0o755,
    UNIT: 0o644,
    "usr/share/dbwarden/packs/guardrails.yaml": 0o644,
    "usr/share/dbwarden/packs/pii.yaml": 0o644,
    "usr/share/doc/dbwarden/changelog.gz": 0o644,
    "usr/share/doc/dbwarden/copyright": 0o644,
    "usr/share/lintian/overrides/dbwarden": 0o644,
    "usr/share/man/man8/dbwarden.8.gz": 0o644,
}


def run(args, **kwargs):
    """Runs a command, returning the CompletedProcess (text, both streams captured)."""
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)


def must(args, **kwargs):
    p = run(args, **kwargs)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {p.returncode}\n"
                             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


class ScratchRoot:
    """An empty root for `dpkg --root`: a dpkg database, Debian 12's merged /usr, and what
    `systemd-analyze verify --root` needs besides the package (the target units, /bin/kill)."""

    def __init__(self, parent, name):
        self.path = Path(parent) / name
        dpkg = self.path / "var/lib/dpkg"
        for d in ("info", "updates", "triggers"):
            (dpkg / d).mkdir(parents=True)
        (dpkg / "status").touch()
        (dpkg / "available").touch()
        (self.path / "usr/bin").mkdir(parents=True)
        (self.path / "usr/lib/systemd").mkdir(parents=True)
        for link in ("bin", "lib", "sbin"):
            (self.path / link).symlink_to(f"usr/{link}")
        (self.path / "usr/sbin").mkdir()
        shutil.copytree("/usr/lib/systemd/system", self.path / "usr/lib/systemd/system",
                        symlinks=True)
        shutil.copy2("/usr/bin/kill", self.path / "usr/bin/kill")
        self.log = Path(parent) / f"{name}-dpkg.log"

    def dpkg(self, *args):
        # Maintainer scripts run on the host with DPKG_ROOT set (the root has no shell), the
        # way they run on a host without a running systemd. The root's dpkg database knows none
        # of the Depends, which the test checks separately.
        return must(["dpkg", f"--root={self.path}", f"--log={self.log}",
                     "--force-script-chrootless", "--force-depends", *args])

    def status(self):
        p = run(["dpkg-query", f"--admindir={self.path}/var/lib/dpkg", "-W",
                 "-f=${db:Status-Abbrev}|${Version}|${Conffiles}", "dbwarden"])
        return p.stdout.strip() if p.returncode == 0 else None

    def files(self):
        """Every path under the root that the root was not made with."""
        seeded = {"var/lib/dpkg", "usr/lib/systemd/system", "usr/bin/kill"}
        out = set()
        for dirpath, dirnames, filenames in os.walk(self.path):
            rel = Path(dirpath).relative_to(self.path)
            dirnames[:] = [d for d in dirnames if str(rel / d) not in seeded]
            for f in filenames:
                r = str(rel / f)
                if r not in seeded:
                    out.add(r)
        return out


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="dbw-pkg-"))
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)  # also if setUp fails
        made = must([SOURCE / "packaging/make-deb", BUILD, cls.tmp / "out"])
        cls.deb = Path(made.stdout.strip().splitlines()[-1])
        cls.make_log = made.stderr
        cls.version = must(["dpkg-deb", "-f", cls.deb, "Version"]).stdout.strip()
        cls.root = ScratchRoot(cls.tmp, "root")
        cls.root.dpkg("--install", cls.deb)
        cls.installed = cls.root.path

    def test_lintian_has_no_errors(self):
        # make-deb already ran lintian --fail-on error; check its output names no error, and
        # run it once more here so a broken make-deb cannot skip it silently.
        self.assertIn("lintian ", self.make_log)
        p = run(["lintian", "--fail-on", "error", "--tag-display-limit", "0", self.deb])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        errors = [line for line in (p.stdout + self.make_log).splitlines() if line.startswith("E:")]
        self.assertEqual(errors, [])

    def test_file_name_and_fields(self):
        arch = must(["dpkg", "--print-architecture"]).stdout.strip()
        self.assertEqual(self.deb.name, f"dbwarden_{self.version}_{arch}.deb")
        project = (SOURCE / "CMakeLists.txt").read_text()
        self.assertIn(f"project(dbwarden VERSION {self.version} ", project)
        fields = {f: must(["dpkg-deb", "-f", self.deb, f]).stdout.strip()
                  for f in ("Package", "Section", "Priority", "Description")}
        self.assertEqual(fields["Package"], "dbwarden")
        self.assertEqual(fields["Section"], "admin")
        self.assertEqual(fields["Priority"], "optional")
        synopsis, _, long = fields["Description"].partition("\n")
        self.assertTrue(synopsis and len(synopsis) < 80, synopsis)
        self.assertGreater(len(long.splitlines()), 5)

    def test_contents(self):
        listing = must(["dpkg-deb", "--contents", self.deb]).stdout.splitlines()
        files = {}
        for line in listing:
            perms, owner, _size, _date, _time, path = line.split(None, 5)
            path = path.removeprefix("./")
            self.assertEqual(owner, "root/root", line)
            if perms.startswith("-"):
                files[path] = perms
        expected = {p: stat.filemode(stat.S_IFREG | m) for p, m in EXPECTED_FILES.items()}
        self.assertEqual(files, expected)

    def test_conffile(self):
        control = self.tmp / "control"
        must(["dpkg-deb", "--control", self.deb, control])
        self.assertEqual((control / "conffiles").read_text().split(), ["/" + CONFFILE])
        for script in ("postinst", "prerm", "postrm"):
            self.assertTrue(os.access(control / script, os.X_OK), script)
        status = self.root.status()
        self.assertTrue(status.startswith(f"ii |{self.version}|"), status)
        self.assertIn("/" + CONFFILE + " ", status)

    def test_depends_from_linked_libraries(self):
        depends = must(["dpkg-deb", "-f", self.deb, "Depends"]).stdout.strip()
        self.assertTrue(depends)
        names = {d.split()[0] for d in depends.split(", ")}
        # Each shared library the binary links (DT_NEEDED; not their own dependencies) comes
        # from a package in Depends.
        binary = self.installed / "usr/bin/dbwarden"
        needed = []
        for line in must(["readelf", "--dynamic", binary]).stdout.splitlines():
            if "(NEEDED)" in line:
                needed.append(line.split("[", 1)[1].rstrip("]"))
        self.assertIn("libssl.so.3", needed)
        resolved = {}
        for line in must(["ldd", binary]).stdout.splitlines():
            soname, sep, rest = line.strip().partition(" => ")
            if sep:
                resolved[soname] = rest.split(" (")[0]
            elif soname.startswith("/"):  # the loader: "/lib64/ld-linux-x86-64.so.2 (0x...)"
                path = soname.split(" (")[0]
                resolved[os.path.basename(path)] = path
        for soname in needed:
            path = resolved.get(soname, "")
            self.assertTrue(path.startswith("/"), f"{soname}: not found by ldd")
            owner = run(["dpkg", "-S", path])
            if owner.returncode != 0:  # merged /usr: dpkg knows /lib/... or /usr/lib/...
                alt = path[4:] if path.startswith("/usr/") else "/usr" + path
                owner = must(["dpkg", "-S", alt])
            package = owner.stdout.split(":")[0]
            self.assertIn(package, names, f"{soname} is in {package}, not in Depends: {depends}")
        for lib in ("libssl3", "libyaml-cpp0.7", "libhyperscan5", "libbpf1", "libsystemd0"):
            self.assertIn(lib, names)

    def test_binary_is_stripped(self):
        sections = must(["readelf", "--section-headers", "--wide",
                         self.installed / "usr/bin/dbwarden"]).stdout
        self.assertNotIn(".debug_info", sections)
        self.assertNotIn(".symtab", sections)

    def test_installed_modes(self):
        def mode(rel):
            st = (self.installed / rel).lstat()
            self.assertEqual((st.st_uid, st.st_gid), (0, 0), rel)
            return stat.S_IMODE(st.st_mode)

        for rel, m in EXPECTED_FILES.items():
            self.assertEqual(mode(rel), m, rel)
        state = self.installed / "var/lib/dbwarden"
        self.assertTrue(state.is_dir())
        self.assertEqual(mode("var/lib/dbwarden"), 0o700)
        # Installed, not enabled: the example configuration needs editing first.
        self.assertFalse(list(self.installed.glob("etc/systemd/system/*.wants/dbwarden.service")))

    def test_unit_verifies_as_installed(self):
        # --root: the unit, its ExecStart and ExecReload binaries and its targets are resolved
        # inside the scratch root, so this checks the installed files, not the build tree.
        # Documentation=man:dbwarden(8) is checked with man(1) on the root's manual pages.
        env = dict(os.environ, MANPATH=str(self.installed / "usr/share/man"))
        p = run(["systemd-analyze", "verify", f"--root={self.installed}", "dbwarden.service"],
                env=env)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # Unknown keys and bad values are warnings with exit 0: any output fails the test.
        self.assertEqual((p.stdout + p.stderr).strip(), "")
        self.assertIn("ExecStart=/usr/bin/dbwarden run --config /" + CONFFILE + "\n",
                      (self.installed / UNIT).read_text())

    def test_installed_binary_runs(self):
        binary = self.installed / "usr/bin/dbwarden"
        p = must([binary, "--version"])
        self.assertEqual(p.stdout, f"dbwarden {self.version}\n")

    def test_shipped_config_checks(self):
        binary = self.installed / "usr/bin/dbwarden"
        conf = self.installed / CONFFILE
        p = must([binary, "config", "check", conf])
        self.assertEqual(p.stdout, f"{conf}: ok (1 target(s))\n")
        # config check opens no other file; the policy files the config names are absolute
        # paths on the host, so check them inside the scratch root.
        config = yaml.safe_load(conf.read_text())
        files = config["policy"]["files"]
        self.assertTrue(files)
        in_root = []
        for f in files:
            self.assertFalse(set(f) & set("*?["), f"{f}: a glob that may match nothing")
            self.assertTrue((self.installed / f.lstrip("/")).is_file(), f)
            in_root.append(self.installed / f.lstrip("/"))
        must([binary, "policy", "check", *in_root])
        self.assertEqual(config["state_dir"], "/var/lib/dbwarden")
        self.assertIn("ReadWritePaths=/var/lib/dbwarden\n", (self.installed / UNIT).read_text())

    def test_man_page_covers_the_cli(self):
        page = self.installed / "usr/share/man/man8/dbwarden.8.gz"
        env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
        rendered = run(["man", "--warnings", "-l", page], env=env)
        self.assertEqual(rendered.returncode, 0, rendered.stderr)
        self.assertEqual(rendered.stderr, "")
        text = gzip.decompress(page.read_bytes()).decode()
        usage = must([self.installed / "usr/bin/dbwarden", "--help"]).stdout
        commands = set()
        for line in usage.splitlines():
            words = line.split()
            if words and words[0] == "dbwarden" and len(words) > 1:
                commands.add(" ".join(w for w in words[1:3] if not w.startswith(("[", "-")) and
                                      w.islower() and w.isalpha()))
        commands.discard("")
        self.assertGreater(len(commands), 8)
        for cmd in commands:
            self.assertIn(f"\n.B dbwarden {cmd}", text, f"the man page's SYNOPSIS lacks {cmd!r}")
        self.assertIn(".B dbwarden \\-\\-version", text)

    def test_reinstall_keeps_local_config_and_fixes_state_mode(self):
        root = ScratchRoot(self.tmp, "reinstall")
        root.dpkg("--install", self.deb)
        conf = root.path / CONFFILE
        conf.write_text(conf.read_text() + "log_level: debug\n")
        (root.path / "var/lib/dbwarden").chmod(0o755)
        root.dpkg("--force-confold", "--install", self.deb)
        self.assertTrue(conf.read_text().endswith("log_level: debug\n"))
        self.assertFalse((root.path / (CONFFILE + ".dpkg-dist")).exists())
        self.assertEqual(stat.S_IMODE((root.path / "var/lib/dbwarden").stat().st_mode), 0o700)

    def test_remove_keeps_config_and_state_purge_removes_all(self):
        root = ScratchRoot(self.tmp, "purge")
        before = root.files()
        root.dpkg("--install", self.deb)
        audit = root.path / "var/lib/dbwarden/audit/CURRENT"
        audit.parent.mkdir()
        audit.write_text("MANIFEST-000001\n")
        conf = root.path / CONFFILE
        conf.write_text(conf.read_text() + "log_level: debug\n")

        root.dpkg("--remove", "dbwarden")
        self.assertTrue(root.status().startswith("rc |"), root.status())
        for rel in EXPECTED_FILES:
            if rel != CONFFILE:
                self.assertFalse((root.path / rel).exists(), rel)
        self.assertTrue(conf.read_text().endswith("log_level: debug\n"))
        self.assertTrue(audit.is_file())

        root.dpkg("--purge", "dbwarden")
        self.assertIsNone(root.status())
        self.assertFalse((root.path / "etc/dbwarden").exists())
        self.assertFalse((root.path / "var/lib/dbwarden").exists())
        left = {f for f in root.files() - before if not f.startswith("var/lib/dpkg/")}
        self.assertEqual(left, set())


if __name__ == "__main__":
    unittest.main()
