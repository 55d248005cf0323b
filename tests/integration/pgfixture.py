"""Fixtures for dbwarden integration tests: throwaway PostgreSQL 15 clusters, a dbwarden relay
process with its audit log, a throwaway PKI made with the openssl CLI, and a raw pgwire client.

Everything binds to 127.0.0.1 only, waits by polling with a deadline, and is torn down on close(),
at interpreter exit and on SIGTERM, even when a test fails half-way.

Run `/usr/bin/python3 tests/integration/pgfixture.py` for a self-check that needs no dbwarden.
"""

import atexit
import base64
import difflib
import hashlib
import hmac
import importlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

PG_BIN = Path('/usr/lib/postgresql/15/bin')
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DBWARDEN_BIN = REPO_ROOT / 'build' / 'default' / 'agent' / 'dbwarden'
LOOPBACK = '127.0.0.1'

# Environment for client tools: no user-level settings leak into comparisons.
CLIENT_ENV = {
    'PATH': '/usr/bin:/bin',
    'LC_ALL': 'C.UTF-8',
    'PGTZ': 'UTC',
    'PGCLIENTENCODING': 'UTF8',
    'PGCONNECT_TIMEOUT': '15',
}


class PrerequisiteError(AssertionError):
    """A tool, package or binary that the tests need is missing; never a reason to skip."""


# ---------------------------------------------------------------------------------------------
# Small utilities


def wait_until(predicate, timeout, what='condition', interval=0.05):
    """Polls predicate() until it returns a truthy value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - a failing probe is "not yet"
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f' (last error: {last_exc!r})' if last_exc else ''
            raise TimeoutError(f'timed out after {timeout}s waiting for {what}{detail}')
        time.sleep(interval)


_issued_ports = set()


def free_port():
    """A loopback TCP port that was free a moment ago (bind port 0, read it, release it), and
    not handed out before by this process: the kernel may return a just-released port again, and
    two ports taken one after the other for one relay (its listener and its API) must differ."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
        if port not in _issued_ports:
            _issued_ports.add(port)
            return port


def port_accepts(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def short_diff(expected, actual, label_a='direct', label_b='relay', limit=60):
    lines = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(), label_a,
                                      label_b, lineterm='', n=2))
    more = f'\n... ({len(lines) - limit} more diff lines)' if len(lines) > limit else ''
    return '\n'.join(lines[:limit]) + more


def tail(path, max_chars=4000):
    try:
        text = Path(path).read_text(errors='replace')
    except OSError as exc:
        return f'<cannot read {path}: {exc}>'
    return text[-max_chars:]


def run(cmd, *, timeout=60, check=True, env=None, input=None, user=None, cwd=None):
    """subprocess.run with captured text output, a timeout, and a readable failure."""
    if user is not None and os.geteuid() == 0 and user != 'root':
        cmd = ['runuser', '-u', user, '--'] + [str(c) for c in cmd]
    cmd = [str(c) for c in cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          input=input, cwd=cwd, stdin=None if input is not None else
                          subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise RuntimeError(f'command failed (exit {proc.returncode}): {" ".join(cmd)}\n'
                           f'stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}')
    return proc


_cleanups = []
_cleanup_lock = threading.Lock()


def _register(obj):
    with _cleanup_lock:
        _cleanups.append(obj)


def _unregister(obj):
    with _cleanup_lock:
        if obj in _cleanups:
            _cleanups.remove(obj)


@atexit.register
def _cleanup_all():
    with _cleanup_lock:
        pending = list(reversed(_cleanups))
    for obj in pending:
        try:
            obj.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _on_sigterm(signum, frame):
    # KeyboardInterrupt, not SystemExit: unittest records the latter as a test error and goes
    # on, while KeyboardInterrupt stops the run and lets atexit remove the clusters.
    raise KeyboardInterrupt(f'signal {signum}')


def _install_sigterm_cleanup():
    # atexit does not run on a default SIGTERM (e.g. ctest's timeout), so translate it.
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


_install_sigterm_cleanup()


# ---------------------------------------------------------------------------------------------
# Prerequisites


def require_tools(*names):
    missing = [n for n in names if shutil.which(n, path=CLIENT_ENV['PATH'] + ':/usr/sbin:/sbin')
               is None]
    if missing:
        raise PrerequisiteError(f'missing tools: {", ".join(missing)} '
                                '(run scripts/install-deps as root)')


def require_postgres():
    for tool in ('initdb', 'pg_ctl', 'postgres', 'psql', 'pgbench'):
        if not (PG_BIN / tool).exists():
            raise PrerequisiteError(f'{PG_BIN / tool} not found: install postgresql-15 '
                                    '(scripts/install-deps)')
    if os.geteuid() == 0:
        try:
            pwd.getpwnam('postgres')
        except KeyError as exc:
            raise PrerequisiteError('running as root but there is no "postgres" OS user to '
                                    'run initdb as (install postgresql-15)') from exc
        require_tools('runuser')


def require_tap():
    """Skips the calling module where the tap's BPF programs cannot load: not root, no BTF."""
    import unittest
    if os.geteuid() != 0:
        raise unittest.SkipTest('the tap needs root (BPF)')
    if not os.path.exists('/sys/kernel/btf/vmlinux'):
        raise unittest.SkipTest('the tap needs a kernel with BTF')


def require_psycopg2():
    try:
        importlib.import_module('psycopg2.errors')
    except ImportError as exc:
        raise PrerequisiteError('psycopg2 is not importable by this interpreter; run the tests '
                                'with /usr/bin/python3 (python3-psycopg2)') from exc


def dbwarden_bin():
    """Path of the dbwarden binary under test ($DBWARDEN_BIN or the default build dir)."""
    path = Path(os.environ.get('DBWARDEN_BIN') or DEFAULT_DBWARDEN_BIN)
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file() or not os.access(path, os.X_OK):
        raise PrerequisiteError(f'dbwarden binary not found or not executable at {path}: build it '
                                '(cmake --preset default && cmake --build --preset default) or '
                                'set DBWARDEN_BIN')
    return str(path)


# ---------------------------------------------------------------------------------------------
# PostgreSQL cluster


def cgroup2_root():
    """The cgroup v2 hierarchy's mount point (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid
    hosts), from /proc/self/mountinfo."""
    with open('/proc/self/mountinfo') as f:
        for line in f:
            head, _, tail = line.partition(' - ')
            fields = head.split()
            if tail.startswith('cgroup2 ') and len(fields) >= 5 and fields[3] == '/':
                return Path(fields[4])
    return Path('/nonexistent-cgroup2')


class TestCgroup:
    """A cgroup v2 directory made by a test (and children of it); close() kills what is left in
    them and removes them."""

    def __init__(self, name, parent=None):
        root = cgroup2_root()
        if not (root / 'cgroup.procs').exists():
            raise PrerequisiteError('no cgroup v2 hierarchy is mounted')
        self.path = (parent.path if parent else root) / name
        self.path.mkdir()
        self.rel = '/' + str(self.path.relative_to(root))
        self.children = []
        if parent:
            parent.children.append(self)
        else:
            _register(self)

    def child(self, name):
        return TestCgroup(name, self)

    def wrap(self, cmd):
        """`cmd` (a list) run so that it starts inside this cgroup: a shell moves itself in and
        execs the command, so the command's pid is the shell's."""
        return ['/bin/sh', '-c', 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', 'sh',
                str(self.path)] + [str(c) for c in cmd]

    def enter(self):
        """For subprocess's preexec_fn: moves the calling (child) process in."""
        with open(self.path / 'cgroup.procs', 'w') as f:
            f.write(str(os.getpid()))

    def pids(self):
        try:
            return [int(p) for p in (self.path / 'cgroup.procs').read_text().split()]
        except OSError:
            return []

    def close(self):
        for c in list(self.children):
            c.close()
        for _ in range(100):
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                self.path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)
        _unregister(self)


class PgCluster:
    """A throwaway PostgreSQL 15 cluster in a temp dir owned by the postgres OS user.

    Admin work (psql(), create_user(), ...) goes over the unix socket in the temp dir with trust
    auth, so it works whatever pg_hba rules a test installs for TCP.
    """

    def __init__(self, *, ssl_cert=None, ssl_key=None, ssl_ca=None, hba_lines=None, conf=None,
                 superuser='postgres', cgroup=None):
        """hba_lines replace the TCP rules (default: `host all all 127.0.0.1/32 trust`);
        conf is a dict of extra postgresql.conf settings; cgroup (a TestCgroup): the server runs
        in it, as a server in its own systemd unit would."""
        self.cgroup = cgroup
        self.ssl_cert, self.ssl_key, self.ssl_ca = ssl_cert, ssl_key, ssl_ca
        self.hba_lines = hba_lines
        self.conf = dict(conf or {})
        self.superuser = superuser
        self.host = LOOPBACK
        self.port = None
        self.root = None
        self.os_user = 'postgres' if os.geteuid() == 0 else None
        self._initialized = False

    # -- lifecycle

    @property
    def datadir(self):
        return Path(self.root) / 'data'

    @property
    def socket_dir(self):
        return str(self.root)

    @property
    def logfile(self):
        return Path(self.root) / 'postgres.log'

    def start(self):
        if not self._initialized:
            self._init()
        self._pg_ctl('start', '-w', '-t', '60', '-l', self.logfile)
        return self

    def _start_cmd(self, cmd):
        if self.cgroup is None:
            return cmd
        if self.os_user:
            cmd = ['runuser', '-u', self.os_user, '--'] + cmd
        return self.cgroup.wrap(cmd)

    def _init(self):
        require_postgres()
        self.root = tempfile.mkdtemp(prefix='dbwarden-pg-')
        _register(self)
        os.chmod(self.root, 0o755)
        if self.os_user:
            pw = pwd.getpwnam(self.os_user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        run([PG_BIN / 'initdb', '-D', self.datadir, '-U', self.superuser, '-A', 'trust',
             '-E', 'UTF8', '--no-locale', '--no-sync'], user=self.os_user, timeout=120)
        settings = {
            'port': self.port,
            'listen_addresses': LOOPBACK,
            'unix_socket_directories': self.socket_dir,
            'max_connections': 400,
            'password_encryption': 'scram-sha-256',
            'fsync': 'off',
            'synchronous_commit': 'off',
            'full_page_writes': 'off',
            'log_connections': 'on',
            'log_disconnections': 'on',
            'log_line_prefix': '%m [%p] %q%u@%d/%a ',
        }
        if self.ssl_cert:
            settings.update(ssl='on', ssl_cert_file=self._own_copy(self.ssl_cert, 'server.crt'),
                            ssl_key_file=self._own_copy(self.ssl_key, 'server.key', 0o600))
            if self.ssl_ca:
                settings['ssl_ca_file'] = self._own_copy(self.ssl_ca, 'root.crt')
        settings.update(self.conf)
        with open(self.datadir / 'postgresql.conf', 'a') as f:
            f.write('\n# dbwarden integration test settings\n')
            for key, value in settings.items():
                if isinstance(value, str) and not re.fullmatch(r'[0-9]+', value):
                    value = "'" + value.replace("'", "''") + "'"
                f.write(f'{key} = {value}\n')
        tcp_rules = self.hba_lines or [f'host all all {LOOPBACK}/32 trust']
        (self.datadir / 'pg_hba.conf').write_text(
            'local all all trust\n' + '\n'.join(tcp_rules) + '\n')
        self._initialized = True

    def _own_copy(self, src, name, mode=0o644):
        # The server insists on a key owned by itself with no group/other access.
        dst = self.datadir / name
        shutil.copyfile(src, dst)
        os.chmod(dst, mode)
        if self.os_user:
            pw = pwd.getpwnam(self.os_user)
            os.chown(dst, pw.pw_uid, pw.pw_gid)
        return str(dst)

    def _pg_ctl(self, *args, timeout=90, check=True):
        cmd = [PG_BIN / 'pg_ctl', '-D', self.datadir] + list(args)
        if self.cgroup is not None and args and args[0] in ('start', 'restart'):
            return run(self._start_cmd(cmd), timeout=timeout, check=check)
        return run(cmd, user=self.os_user, timeout=timeout, check=check)

    def restart(self, mode='fast'):
        self._pg_ctl('restart', '-m', mode, '-w', '-t', '60', '-l', self.logfile)

    def stop(self, mode='fast'):
        self._pg_ctl('stop', '-m', mode, '-w', '-t', '60')

    def is_running(self):
        return self._initialized and self._pg_ctl('status', check=False).returncode == 0

    def close(self):
        """Stops the server (immediate) and removes the temp dir; safe to call twice."""
        if self.root is None:
            return
        try:
            if self.is_running():
                proc = self._pg_ctl('stop', '-m', 'immediate', '-w', '-t', '30', check=False)
                if proc.returncode != 0:
                    self._kill_postmaster()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
            _unregister(self)

    def _kill_postmaster(self):
        try:
            pid = int((self.datadir / 'postmaster.pid').read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass

    def log_tail(self, max_chars=4000):
        return tail(self.logfile, max_chars)

    # -- connecting

    def conninfo(self, dbname='postgres', user=None, **extra):
        parts = {'host': self.host, 'port': self.port, 'dbname': dbname,
                 'user': user or self.superuser}
        parts.update(extra)
        return ' '.join(f'{k}={v}' for k, v in parts.items())

    def psql(self, sql, *, dbname='postgres', user=None, timeout=60, check=True):
        """Runs sql as the superuser over the unix socket; returns unaligned, tuples-only text."""
        proc = run([PG_BIN / 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
                    '-h', self.socket_dir, '-p', self.port, '-U', user or self.superuser,
                    '-d', dbname, '-c', sql], env=CLIENT_ENV, timeout=timeout, check=check)
        return proc.stdout.rstrip('\n') if check else proc

    def query_value(self, sql, dbname='postgres'):
        return self.psql(sql, dbname=dbname)

    def create_user(self, name, password=None, superuser=False):
        pw = f" PASSWORD '{password}'" if password else ''
        role = ' SUPERUSER' if superuser else ''
        self.psql(f'CREATE ROLE "{name}" LOGIN{role}{pw}')

    def create_db(self, name, owner=None):
        owner_sql = f' OWNER "{owner}"' if owner else ''
        self.psql(f'CREATE DATABASE "{name}"{owner_sql}')

    def backend_pids(self, where):
        """pids from pg_stat_activity matching an SQL condition (admin connection excluded)."""
        out = self.psql(f'SELECT pid FROM pg_stat_activity WHERE ({where}) '
                        'AND pid <> pg_backend_pid()')
        return [int(x) for x in out.split()] if out else []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------------
# dbwarden relay


def _yaml_scalar(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    if re.fullmatch(r'[A-Za-z0-9_./][A-Za-z0-9_./:@-]*', text) and not text.endswith(':'):
        return text
    return json.dumps(text)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """A tiny YAML emitter for dicts, lists and scalars (no dependency on PyYAML)."""
    pad = ' ' * indent
    lines = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, (dict, list)) and value:
                lines.append(f'{pad}{key}:')
                lines.append(to_yaml(value, indent + 2))
            else:
                lines.append(f'{pad}{key}: {_yaml_scalar(value)}')
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict):
                body = to_yaml(item, indent + 2).splitlines()
                lines.append(f'{pad}- {body[0].lstrip()}')
                lines.extend(body[1:])
            else:
                lines.append(f'{pad}- {_yaml_scalar(item)}')
    else:
        lines.append(pad + _yaml_scalar(obj))
    return '\n'.join(lines)


def parse_hostport(text):
    m = re.fullmatch(r'\[(.+)\]:(\d+)|([^:]+):(\d+)', text)
    if not m:
        raise ValueError(f'bad host:port {text!r}')
    return (m.group(1) or m.group(3)), int(m.group(2) or m.group(4))


# The viewer token every fixture Relay's API accepts unless the test configures its own tokens
# (the API answers 401 to every route but health without a valid token).
FIXTURE_API_TOKEN = 'fixture-viewer-token'


def api_request(port, path, token=FIXTURE_API_TOKEN, method='GET', body=None):
    """One HTTP request to a relay's API on loopback: (status, headers, body bytes). `token` is
    sent as a bearer token (None: no Authorization header); HTTP errors are returned, not
    raised."""
    req = urllib.request.Request(f'http://{LOOPBACK}:{port}{path}', method=method, data=body)
    if token:
        req.add_header('Authorization', f'Bearer {token}')
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


# -- the agent seen from outside: /proc and /metrics


def rss_kib(pid):
    """Resident set size of `pid` in KiB (VmRSS)."""
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU time `pid` has used, in seconds."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def fd_count(pid):
    return len(os.listdir(f'/proc/{pid}/fd'))


def module_cluster():
    """For a suite's setUpModule: checks PostgreSQL, psycopg2 and the dbwarden binary, and
    starts a throwaway cluster that is stopped at module cleanup."""
    import unittest
    require_postgres()
    require_psycopg2()
    dbwarden_bin()
    cluster = PgCluster()
    unittest.addModuleCleanup(cluster.close)
    cluster.start()
    return cluster


def guardrails_relay(cluster, target='prod', rules=''):
    """A started relay with one `prod` target in front of `cluster` and the shipped default pack
    (policy/packs/guardrails.yaml), callers whose application_name starts with `ai-` classified
    as AI agents, and `rules` (YAML list items under `rules:`) as a site file beside it. Closed at
    module cleanup."""
    import unittest
    site = os.path.join(os.path.dirname(cluster.datadir), 'site.yaml')
    with open(site, 'w') as f:
        f.write('version: 1\nprincipals:\n  agents:\n    - application_name: ["ai-*"]\n'
                'rules:' + (('\n' + rules) if rules else ' []\n'))
    pack = REPO_ROOT / 'policy' / 'packs' / 'guardrails.yaml'
    relay = Relay([{'name': target, 'env': 'prod', 'upstream': f'{LOOPBACK}:{cluster.port}'}],
                  workers=1, extra={'policy': {'files': [str(pack), site]}})
    unittest.addModuleCleanup(relay.close)
    return relay.start()


def psycopg2_connect(port, *, user='postgres', dbname='postgres', application_name=None,
                     autocommit=True):
    """A psycopg2 connection to 127.0.0.1:port (a relay or a cluster)."""
    import psycopg2
    kwargs = {'application_name': application_name} if application_name else {}
    conn = psycopg2.connect(host=LOOPBACK, port=port, user=user, dbname=dbname, **kwargs)
    conn.autocommit = autocommit
    return conn


def sql_outcome(conn, sql):
    """Runs `sql` on a psycopg2 connection: ('ok', status message), or the SQLSTATE and message
    of the error."""
    import psycopg2
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return 'ok', cur.statusmessage
    except psycopg2.Error as exc:
        return exc.pgcode, str(exc)


def metric(api_port, name):
    """The value of metric `name` (with its {labels} when given, else the first series) from a
    relay's /metrics; 0 when absent."""
    text = api_request(api_port, '/metrics')[2].decode()
    m = re.search(r'^' + re.escape(name) + r'(?:\{[^}]*\})? (\d+)', text, re.M)
    return int(m.group(1)) if m else 0


# Unit suffixes Prometheus's conventions rule out: metrics are in base units (seconds, bytes).
_NON_BASE_UNIT = re.compile(
    r'_(ns|us|ms|nanoseconds|microseconds|milliseconds|minutes|hours|kb|mb|gb|kib|mib|gib)(_|$)')


def metric_convention_problems(text):
    """What in a /metrics body breaks the exposition format or Prometheus's naming conventions:
    parsed with prometheus_client's own parser, then every family checked for HELP and TYPE
    (once each), counters named *_total, histograms in _seconds or _bytes, no non-base units,
    every sample under a declared family, and no two families with the same HELP (one metric
    exported under two names). Returns a list of problems; empty when it conforms."""
    from prometheus_client.parser import text_string_to_metric_families
    problems = []
    try:
        list(text_string_to_metric_families(text))
    except Exception as exc:  # noqa: BLE001 - any parse failure is the finding
        problems.append(f'prometheus_client cannot parse it: {exc}')
    helps, types, help_owner = {}, {}, {}
    for line in text.splitlines():
        if line.startswith('# HELP '):
            name, _, doc = line[7:].partition(' ')
            if name in helps:
                problems.append(f'{name}: HELP twice')
            helps[name] = doc
            if not doc.strip():
                problems.append(f'{name}: empty HELP')
            elif doc in help_owner:
                problems.append(f'{name} and {help_owner[doc]}: the same HELP ({doc!r}): one '
                                'metric under two names?')
            else:
                help_owner[doc] = name
        elif line.startswith('# TYPE '):
            name, _, kind = line[7:].partition(' ')
            if name in types:
                problems.append(f'{name}: TYPE twice')
            types[name] = kind
            if name not in helps:
                problems.append(f'{name}: no HELP')
            if kind == 'counter' and not name.endswith('_total'):
                problems.append(f'{name}: a counter not named *_total')
            if kind != 'counter' and name.endswith('_total'):
                problems.append(f'{name}: a {kind} named *_total')
            if kind == 'histogram' and not name.endswith(('_seconds', '_bytes')):
                problems.append(f'{name}: a histogram not in seconds or bytes')
            if _NON_BASE_UNIT.search(name):
                problems.append(f'{name}: not in base units')
        elif line and not line.startswith('#'):
            sample = re.match(r'[a-zA-Z_:][a-zA-Z0-9_:]*', line).group(0)
            family = sample
            if sample not in types:
                for suffix in ('_bucket', '_sum', '_count'):
                    if sample.endswith(suffix) and types.get(sample[:-len(suffix)]) == 'histogram':
                        family = sample[:-len(suffix)]
            if family not in types:
                problems.append(f'{sample}: a sample of no declared family')
    return problems


class Relay:
    """One `dbwarden run` process with its own temp state dir, config and stderr log.

    targets: list of dicts with the config's target keys; `listen` defaults to a free loopback
    port, `env` to "test". relay_opts: extra keys for the `relay:` section.
    """

    def __init__(self, targets, *, workers=2, shutdown_grace='5s', relay_opts=None, extra=None,
                 api_opts=None, cgroup=None):
        """cgroup (a TestCgroup): the agent runs in it."""
        self.bin = dbwarden_bin()
        self.cgroup = cgroup
        self.root = tempfile.mkdtemp(prefix='dbwarden-relay-')
        _register(self)
        self.state_dir = os.path.join(self.root, 'state')
        os.mkdir(self.state_dir)
        self.config_path = os.path.join(self.root, 'dbwarden.yaml')
        self.log_path = os.path.join(self.root, 'dbwarden.stderr')
        self.audit_path = os.path.join(self.state_dir, 'audit.jsonl')
        self.targets = []
        for t in targets:
            t = dict(t)
            t.setdefault('env', 'test')
            t.setdefault('listen', f'{LOOPBACK}:{free_port()}')
            self.targets.append(t)
        relay = {}
        if workers is not None:
            relay['workers'] = workers
        if shutdown_grace is not None:
            relay['shutdown_grace'] = shutdown_grace
        relay.update(relay_opts or {})
        config = {'state_dir': self.state_dir}
        if relay:
            config['relay'] = relay
        config['targets'] = self.targets
        # Every relay gets its own API port, so several can run side by side.
        self.api_port = free_port()
        config['api'] = {'listen': f'{LOOPBACK}:{self.api_port}',
                         'tokens': [{'name': 'fixture', 'role': 'viewer',
                                     'sha256': hashlib.sha256(
                                         FIXTURE_API_TOKEN.encode()).hexdigest()}]}
        config['api'].update(api_opts or {})
        # The eBPF tap is off unless a test asks for it: its events would mingle with the
        # relay's in every other suite, and loading it costs seconds.
        config['tap'] = {'enabled': 'false'}
        config.update(extra or {})
        # The API's listener, waited for by start() like the targets' (None: API off).
        api = config.get('api') or {}
        self._api_listen = (None if str(api.get('enabled', 'true')).lower() == 'false'
                            else api.get('listen'))
        self.config_text = to_yaml(config) + '\n'
        Path(self.config_path).write_text(self.config_text)
        self.proc = None
        self._log = None

    def listen(self, name=None):
        """(host, port) where target `name` (default: the first) listens."""
        target = self.targets[0] if name is None else next(
            t for t in self.targets if t['name'] == name)
        return parse_hostport(target['listen'])

    def port(self, name=None):
        return self.listen(name)[1]

    def start(self, timeout=20):
        if self._log:  # a restart: the previous run's handle
            self._log.close()
        self._log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen([self.bin, 'run', '--config', self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, cwd=self.root,
                                     preexec_fn=self.cgroup.enter if self.cgroup else None)
        listens = [t['listen'] for t in self.targets]
        if self._api_listen:
            listens.append(self._api_listen)
        for listen in listens:
            host, port = parse_hostport(listen)

            def ready(host=host, port=port):
                if self.proc.poll() is not None:
                    raise AssertionError(f'dbwarden exited with {self.proc.returncode} during '
                                         f'startup\n{self.diag()}')
                return port_accepts(host, port)

            try:
                wait_until(ready, timeout, f'dbwarden to listen on {host}:{port}')
            except TimeoutError as exc:
                raise AssertionError(f'{exc}\n{self.diag()}') from None
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum=signal.SIGTERM):
        self.proc.send_signal(signum)

    def stop(self, timeout=30, expect_rc=0):
        """SIGTERM, wait, and assert the exit code; returns seconds taken to exit."""
        if self.proc is None:
            return 0.0
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f'dbwarden did not exit within {timeout}s of SIGTERM\n'
                                 f'{self.diag()}') from None
        elapsed = time.monotonic() - t0
        if expect_rc is not None and rc != expect_rc:
            raise AssertionError(f'dbwarden exited with {rc} after SIGTERM, expected '
                                 f'{expect_rc}\n{self.diag()}')
        return elapsed

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self._log:
            self._log.close()
            self._log = None
        if self.root and not os.environ.get('DBWARDEN_TEST_KEEP'):
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        _unregister(self)

    def stderr_text(self):
        return tail(self.log_path, 10**7)

    def diag(self, max_chars=3000):
        return (f'--- dbwarden config ({self.config_path}) ---\n{self.config_text}'
                f'--- dbwarden stderr (tail) ---\n{tail(self.log_path, max_chars)}')

    # -- audit

    def events(self, kind=None, predicate=None):
        """Audit events committed so far (read with `dbwarden audit export`, which opens the
        RocksDB store read-only and works while the agent runs), filtered by kind/predicate."""
        if not os.path.isdir(os.path.join(self.state_dir, 'audit')):
            return []
        res = subprocess.run([str(self.bin), 'audit', 'export', '--state-dir', self.state_dir],
                             capture_output=True, timeout=60)
        if res.returncode != 0:
            raise AssertionError(f'audit export failed: {res.stderr.decode(errors="replace")}')
        out = []
        for raw in res.stdout.split(b'\n'):
            if not raw.strip():
                continue
            event = json.loads(raw)
            if kind is not None and event.get('kind') != kind:
                continue
            if predicate is not None and not predicate(event):
                continue
            out.append(event)
        return out

    def wait_for(self, predicate, timeout=10, count=1, kind=None, what='audit event'):
        """Polls the audit log until `count` events match; returns the matching events."""
        try:
            return wait_until(lambda: (lambda evs: evs if len(evs) >= count else None)(
                self.events(kind=kind, predicate=predicate)), timeout, what)
        except TimeoutError as exc:
            seen = self.events()
            sample = '\n'.join(json.dumps(e) for e in seen[-15:])
            raise AssertionError(f'{exc}; {len(seen)} events in the log, last ones:\n{sample}\n'
                                 f'{self.diag(1500)}') from None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            if self.running():
                self.stop()
        finally:
            self.close()


def principal(event):
    return event.get('principal') or {}


# ---------------------------------------------------------------------------------------------
# Throwaway PKI


class Pki:
    """A throwaway CA plus leaf certificates, made with the openssl CLI (EC P-256 keys)."""

    def __init__(self, directory=None):
        require_tools('openssl')
        self.dir = Path(directory or tempfile.mkdtemp(prefix='dbwarden-pki-'))
        self._owned = directory is None
        if self._owned:
            _register(self)
        self.cas = {}

    def make_ca(self, name='ca', cn=None):
        cert, key = self.dir / f'{name}.crt', self.dir / f'{name}.key'
        self._openssl('req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt',
                      'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
                      '-days', '2', '-subj', f'/CN={cn or "dbwarden test " + name}',
                      '-addext', 'basicConstraints=critical,CA:TRUE',
                      '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
        os.chmod(key, 0o600)
        self.cas[name] = (cert, key)
        return cert, key

    def make_cert(self, name, cn, *, ca='ca', dns=(), ips=(), uris=(), client=False):
        ca_cert, ca_key = self.cas[ca]
        cert, key, csr = (self.dir / f'{name}.crt', self.dir / f'{name}.key',
                          self.dir / f'{name}.csr')
        ext = self.dir / f'{name}.ext'
        sans = [f'DNS:{d}' for d in dns] + [f'IP:{i}' for i in ips] + [f'URI:{u}' for u in uris]
        lines = ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyAgreement',
                 f'extendedKeyUsage={"clientAuth" if client else "serverAuth"}']
        if sans:
            lines.append('subjectAltName=' + ','.join(sans))
        ext.write_text('\n'.join(lines) + '\n')
        self._openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                      '-nodes', '-keyout', key, '-out', csr, '-subj', f'/CN={cn}')
        self._openssl('x509', '-req', '-in', csr, '-CA', ca_cert, '-CAkey', ca_key,
                      '-set_serial', str(int.from_bytes(os.urandom(8), 'big')), '-days', '2',
                      '-extfile', ext, '-out', cert)
        os.chmod(key, 0o600)
        return cert, key

    def _openssl(self, *args):
        run(['openssl'] + list(args), timeout=60)

    def close(self):
        if self._owned and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            _unregister(self)


def make_test_pki(client_cn='app'):
    """CA 'ca' with server (localhost/127.0.0.1), relay and client certs, plus an unrelated CA
    'other_ca'. Returns the Pki; paths are attributes (ca_cert, server_cert, ...)."""
    pki = Pki()
    pki.ca_cert, pki.ca_key = pki.make_ca('ca')
    pki.server_cert, pki.server_key = pki.make_cert('server', 'localhost', dns=['localhost'],
                                                    ips=[LOOPBACK])
    pki.relay_cert, pki.relay_key = pki.make_cert('relay', 'localhost', dns=['localhost'],
                                                  ips=[LOOPBACK])
    pki.client_cert, pki.client_key = pki.make_cert('client', client_cn, client=True)
    pki.other_ca_cert, pki.other_ca_key = pki.make_ca('other_ca', cn='unrelated test CA')
    return pki


# ---------------------------------------------------------------------------------------------
# Raw pgwire client: for bytes that real drivers would never send, and for fields (SQLSTATE of a
# connection failure, SASL mechanism list) that drivers do not expose.

PROTOCOL_V3 = 196608
SSL_REQUEST_CODE = 80877103


def startup_message(user, database, **params):
    body = struct.pack('!I', PROTOCOL_V3)
    for key, value in dict(user=user, database=database, **params).items():
        body += key.encode() + b'\0' + str(value).encode() + b'\0'
    body += b'\0'
    return struct.pack('!I', len(body) + 4) + body


def frame(type_byte, payload=b''):
    return type_byte + struct.pack('!I', len(payload) + 4) + payload


def error_fields(payload):
    """ErrorResponse/NoticeResponse payload -> {field code char: value}."""
    fields = {}
    for part in payload.split(b'\0'):
        if part:
            fields[chr(part[0])] = part[1:].decode('utf-8', 'replace')
    return fields


class RawPg:
    """A minimal frontend over a plain or TLS socket with explicit message-level control."""

    def __init__(self, host, port, timeout=10, source=None):
        """`source`: a local address to connect from (e.g. 127.0.0.2, another loopback
        address, to appear as another client host)."""
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.buf = b''
        self.messages = []  # every (type, payload) received, in order
        self.sasl_mechanisms = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_message(self):
        """(type byte, payload), or None on EOF. Raises socket.timeout when nothing arrives."""
        header = self._recv_exact(5)
        if header is None:
            return None
        length = struct.unpack('!I', header[1:])[0]
        payload = self._recv_exact(length - 4)
        if payload is None:
            return None
        msg = (header[:1], payload)
        self.messages.append(msg)
        return msg

    def read_until_eof(self):
        """All messages until the peer closes; a reset after data counts as the close."""
        out = []
        while True:
            try:
                msg = self.read_message()
            except ConnectionResetError:
                return out, 'reset'
            if msg is None:
                return out, 'eof'
            out.append(msg)

    def start_tls(self, cafile=None, server_hostname=None):
        """SSLRequest; on 'S' wraps the socket. Returns the single answer byte."""
        self.send(struct.pack('!II', 8, SSL_REQUEST_CODE))
        answer = self.sock.recv(1)
        if answer == b'S':
            ctx = ssl.create_default_context(cafile=str(cafile)) if cafile else \
                ssl._create_unverified_context()
            if cafile and not server_hostname:
                ctx.check_hostname = False
            self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        return answer

    def startup(self, user, database, password=None, gs2_flag='n', **params):
        """StartupMessage + authentication (trust, cleartext, SCRAM-SHA-256) until
        ReadyForQuery or an ErrorResponse. Returns ('ready', None) or ('error', fields).

        gs2_flag is SCRAM's channel-binding flag: 'n' (client cannot bind) or 'y' (client could
        bind but the server offered no PLUS mechanism; what libpq sends over TLS by default)."""
        self.send(startup_message(user, database, **params))
        while True:
            msg = self.read_message()
            if msg is None:
                return 'eof', None
            kind, payload = msg
            if kind == b'E':
                return 'error', error_fields(payload)
            if kind == b'Z':
                return 'ready', None
            if kind == b'R':
                code = struct.unpack('!I', payload[:4])[0]
                if code in (0, 12):  # AuthenticationOk, AuthenticationSASLFinal
                    continue
                if code == 3:
                    self.send(frame(b'p', (password or '').encode() + b'\0'))
                elif code == 10:
                    self.sasl_mechanisms = [m.decode() for m in payload[4:].split(b'\0') if m]
                    result = self._scram(password or '', gs2_flag)
                    if result is not None:
                        return result
                else:
                    raise AssertionError(f'unsupported auth request {code}')

    def _scram(self, password, gs2_flag):
        if 'SCRAM-SHA-256' not in self.sasl_mechanisms:
            raise AssertionError(f'no SCRAM-SHA-256 in {self.sasl_mechanisms}')
        nonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = f'n=,r={nonce}'
        gs2_header = f'{gs2_flag},,'
        first = (gs2_header + first_bare).encode()
        self.send(frame(b'p', b'SCRAM-SHA-256\0' + struct.pack('!i', len(first)) + first))
        msg = self.read_message()
        if msg is None:
            return 'eof', None
        if msg[0] == b'E':
            return 'error', error_fields(msg[1])
        server_first = msg[1][4:].decode()
        attrs = dict(kv.split('=', 1) for kv in server_first.split(','))
        salted = hashlib.pbkdf2_hmac('sha256', password.encode(), base64.b64decode(attrs['s']),
                                     int(attrs['i']))
        client_key = hmac.new(salted, b'Client Key', hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f'c={base64.b64encode(gs2_header.encode()).decode()},r={attrs["r"]}'
        auth_message = f'{first_bare},{server_first},{without_proof}'.encode()
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.send(frame(b'p', f'{without_proof},p={base64.b64encode(proof).decode()}'.encode()))
        return None  # AuthenticationSASLFinal / Ok / ErrorResponse follow in startup()

    def simple_query(self, sql):
        """Sends Query; returns messages up to and including ReadyForQuery (or EOF)."""
        self.send(frame(b'Q', sql.encode() + b'\0'))
        out = []
        while True:
            msg = self.read_message()
            if msg is None:
                return out
            out.append(msg)
            if msg[0] == b'Z':
                return out


# ---------------------------------------------------------------------------------------------
# Self-check: the fixture on its own, straight against PostgreSQL (no dbwarden needed).


def _self_check():
    pki = make_test_pki()
    with PgCluster() as pg:
        pg.create_user('app', password='s3cret')
        pg.create_db('appdb', owner='app')
        assert pg.psql('SELECT current_user', dbname='appdb', user='app') == 'app'
        assert pg.psql('SHOW max_connections') == '400'
        assert pg.psql('SHOW listen_addresses') == LOOPBACK
        with RawPg(LOOPBACK, pg.port) as raw:
            assert raw.startup('app', 'appdb') == ('ready', None)
            msgs = raw.simple_query('SELECT 1/0')
            err = [error_fields(p) for t, p in msgs if t == b'E'][0]
            assert err['C'] == '22012', err
        pg.restart()
        assert pg.psql('SELECT 1') == '1'
        print('plain cluster ok on port', pg.port)
    hba = [f'hostssl all all {LOOPBACK}/32 scram-sha-256']
    with PgCluster(ssl_cert=pki.server_cert, ssl_key=pki.server_key, hba_lines=hba) as pg:
        pg.create_user('app', password='s3cret')
        with RawPg(LOOPBACK, pg.port) as raw:
            assert raw.start_tls(pki.ca_cert, 'localhost') == b'S'
            assert raw.startup('app', 'postgres', password='s3cret') == ('ready', None)
            assert 'SCRAM-SHA-256-PLUS' in raw.sasl_mechanisms, raw.sasl_mechanisms
        with RawPg(LOOPBACK, pg.port) as raw:
            raw.start_tls(pki.ca_cert, 'localhost')
            status, fields = raw.startup('app', 'postgres', password='wrong')
            assert status == 'error' and fields['C'] == '28P01', (status, fields)
        proc = run([PG_BIN / 'psql', '-X', '-A', '-t', '-c', 'SELECT 1',
                    f'host={LOOPBACK} port={pg.port} user=app dbname=postgres '
                    f'sslmode=verify-full sslrootcert={pki.ca_cert}'],
                   env=dict(CLIENT_ENV, PGPASSWORD='s3cret'))
        assert proc.stdout.strip() == '1'
        print('ssl cluster ok on port', pg.port)
    pki.close()
    print('self-check passed')


if __name__ == '__main__':
    _self_check()
