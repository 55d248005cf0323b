// pgjdbc against the relay's runtime limits, for tests/integration/test_runtime_limits.py.
//
//   java -cp /usr/share/java/postgresql.jar LimitsCheck.java HOST PORT DB USER APPLICATION_NAME [bound]
//
// Prints one JSON object per line: {"step": ..., "ok": true|false, "sqlstate": ..., "rows": ...}.
// Expects the tables of test_runtime_limits.py: items(id, v) with ids 1..1000 and an empty
// scratch(id). pgjdbc speaks only the extended protocol (BEGIN included), so every step here is
// Parse/Bind/Execute/Sync.
//
// Steps: small_delete (5 rows, autocommit), big_delete (500 rows: stopped), prepared x7 (one
// PreparedStatement past prepareThreshold, so later runs use a named server-side statement),
// batch (three UPDATEs in one Sync), tx_insert, tx_big_delete (stopped), tx_after (25P02),
// tx_rollback, tx2_small_delete + tx2_commit, read_fetch (fetchSize 10 over more rows than the
// read budget: stopped, rows received before the error), read_small, done.

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class LimitsCheck {
    static void report(String step, boolean ok, String sqlstate, long rows, String message) {
        String m = message == null ? "" : message.replace("\\", "\\\\").replace("\"", "\\\"")
                .replace("\n", "\\n");
        System.out.println("{\"step\": \"" + step + "\", \"ok\": " + ok + ", \"sqlstate\": "
                + (sqlstate == null ? "null" : "\"" + sqlstate + "\"") + ", \"rows\": " + rows
                + ", \"message\": \"" + m + "\"}");
    }

    interface Step {
        long run() throws SQLException;
    }

    static void step(String name, Step s) {
        try {
            long rows = s.run();
            report(name, true, null, rows, null);
        } catch (SQLException e) {
            report(name, false, e.getSQLState(), -1, e.getMessage());
        }
    }

    // Prepared statements judged with their values (test_bound_values.py): pgjdbc sends setInt
    // as a binary int4 and setString as text; after prepareThreshold (5) executions a
    // PreparedStatement Binds a named server-side statement parsed once. Expects items(id, v)
    // with ids 1..1000, v = 'x'. Steps: delete_small x8 (one row each, across the threshold),
    // delete_whole (bounds at the type's domain: 42501), delete_after (the statement still
    // works), select_limit (LIMIT ?), select_range (BETWEEN ? AND ?), select_whole (id >
    // -2147483648: 42501), like_pattern ('zz%'), like_everything ('%': 42501).
    static void boundValues(Connection c) throws SQLException {
        try (PreparedStatement p =
                     c.prepareStatement("DELETE FROM items WHERE id >= ? AND id < ?")) {
            for (int i = 0; i < 8; i++) {
                final int id = 900 + i;
                step("delete_small", () -> {
                    p.setInt(1, id);
                    p.setInt(2, id + 1);
                    return p.executeUpdate();
                });
            }
            step("delete_whole", () -> {
                p.setInt(1, -2147483648);
                p.setInt(2, 2147483647);
                return p.executeUpdate();
            });
            step("delete_after", () -> {
                p.setInt(1, 950);
                p.setInt(2, 951);
                return p.executeUpdate();
            });
        }
        step("select_limit", () -> {
            try (PreparedStatement p = c.prepareStatement("SELECT id FROM items LIMIT ?")) {
                p.setInt(1, 7);
                return rows(p);
            }
        });
        step("select_range", () -> {
            try (PreparedStatement p =
                         c.prepareStatement("SELECT id, v FROM items WHERE id BETWEEN ? AND ?")) {
                p.setInt(1, 10);
                p.setInt(2, 13);
                return rows(p);
            }
        });
        step("select_whole", () -> {
            try (PreparedStatement p = c.prepareStatement("SELECT id, v FROM items WHERE id > ?")) {
                p.setLong(1, -2147483648L);
                return rows(p);
            }
        });
        try (PreparedStatement p = c.prepareStatement("DELETE FROM items WHERE v LIKE ?")) {
            step("like_pattern", () -> {
                p.setString(1, "zz%");
                return p.executeUpdate();
            });
            step("like_everything", () -> {
                p.setString(1, "%");
                return p.executeUpdate();
            });
        }
    }

    static long rows(PreparedStatement p) throws SQLException {
        long n = 0;
        try (ResultSet rs = p.executeQuery()) {
            while (rs.next()) {
                n++;
            }
        }
        return n;
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/" + args[2];
        Properties props = new Properties();
        props.setProperty("user", args[3]);
        props.setProperty("ApplicationName", args[4]);
        props.setProperty("sslmode", "disable");
        try (Connection c = DriverManager.getConnection(url, props)) {
            if (args.length > 5 && args[5].equals("bound")) {
                boundValues(c);
                report("done", true, null, 0, null);
                return;
            }
            step("small_delete", () -> {
                try (Statement s = c.createStatement()) {
                    return s.executeUpdate("DELETE FROM items WHERE id <= 5");
                }
            });
            step("big_delete", () -> {
                try (Statement s = c.createStatement()) {
                    return s.executeUpdate("DELETE FROM items WHERE id <= 500");
                }
            });
            try (PreparedStatement p = c.prepareStatement("UPDATE items SET v = 'jdbc' WHERE id = ?")) {
                for (int i = 0; i < 7; i++) {
                    final int id = 600 + i;
                    step("prepared", () -> {
                        p.setInt(1, id);
                        return p.executeUpdate();
                    });
                }
            }
            step("batch", () -> {
                try (PreparedStatement p = c.prepareStatement("UPDATE items SET v = 'batch' WHERE id = ?")) {
                    for (int id = 700; id < 703; id++) {
                        p.setInt(1, id);
                        p.addBatch();
                    }
                    long n = 0;
                    for (int r : p.executeBatch()) {
                        n += r;
                    }
                    return n;
                }
            });
            c.setAutoCommit(false);
            step("tx_insert", () -> {
                try (Statement s = c.createStatement()) {
                    return s.executeUpdate("INSERT INTO scratch VALUES (1)");
                }
            });
            step("tx_big_delete", () -> {
                try (Statement s = c.createStatement()) {
                    return s.executeUpdate("DELETE FROM items WHERE id > 100");
                }
            });
            step("tx_after", () -> {
                try (Statement s = c.createStatement()) {
                    return s.executeUpdate("INSERT INTO scratch VALUES (2)");
                }
            });
            step("tx_rollback", () -> {
                c.rollback();
                return 0;
            });
            step("tx2_small_delete", () -> {
                try (Statement s = c.createStatement()) {
                    return s.executeUpdate("DELETE FROM items WHERE id BETWEEN 10 AND 12");
                }
            });
            step("tx2_commit", () -> {
                c.commit();
                return 0;
            });
            c.setAutoCommit(true);
            // fetchSize needs a transaction in pgjdbc (a portal that survives between Executes).
            c.setAutoCommit(false);
            final long[] received = {0};
            step("read_fetch", () -> {
                try (Statement s = c.createStatement()) {
                    s.setFetchSize(10);
                    try (ResultSet rs = s.executeQuery("SELECT id, v FROM items WHERE id > 0")) {
                        while (rs.next()) {
                            received[0]++;
                        }
                    }
                }
                return received[0];
            });
            report("read_fetch_received", true, null, received[0], null);
            step("read_rollback", () -> {
                c.rollback();
                return 0;
            });
            c.setAutoCommit(true);
            step("read_small", () -> {
                long n = 0;
                try (Statement s = c.createStatement();
                     ResultSet rs = s.executeQuery("SELECT id FROM items WHERE id > 990")) {
                    while (rs.next()) {
                        n++;
                    }
                }
                return n;
            });
        }
        report("done", true, null, 0, null);
    }
}
