"""`make demo` end to end (scripts/demo against the built binary): the README's first command keeps
doing what it says. The output must show masked results and a pii-readers principal seeing them
clear, an agent's DROP, mass DELETE and unbounded SELECT refused on prod, a person's mass DELETE
held and then run once approved, the same agent statements passing on staging, the tap's view of
a session that skipped the relay, and a verified hash chain.

Needs root (the demo runs initdb as postgres and loads the tap): ctest label `privileged`.

Run: DBWARDEN_BIN=build/default/agent/dbwarden /usr/bin/python3 -m unittest \
         tests/integration/test_demo.py -v
"""

import os
import re
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pgfixture as fx  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


class DemoTest(unittest.TestCase):
    def test_demo_shows_what_the_readme_promises(self):
        if os.geteuid() != 0:
            self.skipTest('the demo runs as root')
        env = dict(os.environ, DBWARDEN_BIN=str(fx.dbwarden_bin()))
        res = subprocess.run([str(REPO / 'scripts' / 'demo')], capture_output=True, text=True,
                             env=env, timeout=600)
        out = re.sub(r'\x1b\[[0-9;]*m', '', res.stdout)
        self.assertEqual(res.returncode, 0, out[-3000:] + res.stderr[-3000:])

        def has(pattern):
            self.assertRegex(out, pattern)

        # Masking: partial/redact for the app, clear values for support_lead (pii-readers).
        has(r'Ada Lovelace \| \*\*\*\*@example\.com \| \*\*\*\*1111 \| token \[redacted\]')
        self.assertNotIn('ghp_abcdefghijklmnopqrstuvwxyz0123456789', out)
        has(r'1 \| ada@example\.com +\| 4111 1111 1111 1111')
        # Guardrails on prod for the agent, as recorded in the audit trail.
        has(r'ai-assistant agent .* deny prod-destructive-agen ERROR 42501 +prod DROP TABLE '
            r'customers')
        has(r'ai-assistant agent .* deny prod-no-where-agent +ERROR 42501 +prod DELETE FROM '
            r'customers')
        has(r'ai-assistant agent .* deny prod-unbounded-select ERROR 42501 +prod SELECT \* FROM')
        # A person's mass DELETE: held, approved, run once; a DROP denied by the approver.
        has(r'approved: request [0-9a-f]+ has 1 of 1 approval\(s\), now executed')
        has(r'human .* approve prod-no-where-huma DELETE 50 +prod DELETE FROM old_sessions')
        has(r'human .* approve prod-destructive-h ERROR 42501 +prod DROP TABLE customers')
        # Staging lets the same agent statements through.
        has(r'ai-assistant agent .* allow +DROP TABLE +staging DROP TABLE scratch')
        # The tap saw a session that skipped the relay.
        has(r'DELETE FROM old_sessions would be: approve prod-no-where-human')
        # Kernel routing: the script at the server's own port was masked, judged and audited.
        has(r'session [0-9a-f]+ of /usr/lib/postgresql/15/bin/psql\[\d+\]: dialled '
            r'127\.0\.0\.1:\d+, routed by the kernel to the relay')
        has(r'ai-script +agent .* deny prod-destructive-agen ERROR 42501 +prod DROP TABLE '
            r'customers')
        # pgbench ran and was audited; the chain verifies.
        has(r'pgbench: \d+ statements audited')
        has(r'(?i)verified')


if __name__ == '__main__':
    unittest.main()
