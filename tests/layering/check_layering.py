#!/usr/bin/env python3
"""The direction of dependencies in docs/architecture.md, enforced on #include lines: a module
may include its own headers and those of the modules it depends on, and the modules below the
relay never include Asio/Beast, OpenSSL or RocksDB. Every project root being an include path,
the compiler alone would not catch a header from the wrong layer. Exit 1 with file:line for each
violation."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# module directory -> the module directories it may include (its own is implied).
ALLOWED = {
    'userspace/common': [],
    'userspace/protocol/postgres': ['userspace/common'],
    'userspace/sql': ['userspace/common'],
    'userspace/masking': ['userspace/common'],
    'policy': ['userspace/common', 'userspace/sql', 'userspace/masking'],
    'userspace/identity': ['userspace/common'],
    'userspace/token': ['userspace/common'],
    'userspace/gate': ['userspace/common', 'userspace/protocol/postgres', 'userspace/sql', 'policy',
                       'userspace/masking'],
    'userspace/audit': ['userspace/common', 'userspace/identity', 'userspace/sql', 'policy'],
    'userspace/approvals': ['userspace/common', 'userspace/audit', 'policy', 'userspace/sql'],
    'userspace/witness': ['userspace/common', 'userspace/protocol/postgres', 'userspace/audit'],
    'userspace/export': ['userspace/common', 'userspace/audit'],
    'userspace/api': ['userspace/common', 'userspace/sql', 'policy', 'userspace/audit',
                      'userspace/approvals'],
    'userspace/relay': ['userspace/common', 'userspace/protocol/postgres', 'userspace/sql',
                        'userspace/masking', 'policy', 'userspace/gate', 'userspace/identity',
                        'userspace/audit', 'userspace/approvals', 'userspace/token',
                        'userspace/witness'],
    'userspace/tap': ['userspace/common', 'userspace/protocol/postgres', 'userspace/audit',
                      'policy', 'userspace/gate', 'userspace/sql', 'userspace/identity', 'bpf',
                      'userspace/witness'],
    'userspace/route': ['userspace/common', 'userspace/audit', 'policy', 'userspace/identity',
                        'userspace/tap', 'bpf'],
}
# Third-party headers the lower layers must not see.
FORBIDDEN = ('boost/', 'openssl/', 'rocksdb/')
NO_THIRD_PARTY = {'userspace/common', 'userspace/protocol/postgres', 'userspace/sql',
                  'userspace/witness',
                  'userspace/masking', 'policy', 'userspace/identity', 'userspace/gate'}
MODULES = sorted(ALLOWED, key=len, reverse=True) + ['agent']

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')


def module_of(path):
    for m in MODULES:
        if path == m or path.startswith(m + '/'):
            return m
    return None


def check(root):
    problems = []
    for module, allowed in ALLOWED.items():
        for src in sorted((root / module).rglob('*')):
            if src.suffix not in ('.h', '.cc', '.c') or 'testdata' in src.parts:
                continue
            for n, line in enumerate(src.read_text(errors='replace').splitlines(), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                target = m.group(1)
                where = f'{src.relative_to(root)}:{n}'
                if module in NO_THIRD_PARTY and target.startswith(FORBIDDEN):
                    problems.append(f'{where}: {module} must not include {target}')
                dep = module_of(target)
                if target.startswith('bpf/') or target == 'events.h':
                    dep = 'bpf'
                if dep is None or dep == module:
                    continue
                if dep not in allowed:
                    problems.append(f'{where}: {module} may not depend on {dep} ({target})')
    return problems


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print(f'{len(problems)} layering violation(s); see docs/architecture.md')
        return 1
    print(f'layering: {sum(1 for _ in ALLOWED)} modules follow docs/architecture.md')
    return 0


if __name__ == '__main__':
    sys.exit(main())
