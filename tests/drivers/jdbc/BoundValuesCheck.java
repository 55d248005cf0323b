// pgjdbc against the relay's judging of prepared statements with their parameter values, for
// tests/integration/test_bound_values.py.
//
//   java -cp /usr/share/java/postgresql.jar BoundValuesCheck.java HOST PORT DB USER APPLICATION_NAME
//
// Prints one JSON object per line: {"step": ..., "ok": true|false, "sqlstate": ..., "rows": ...}.
// Expects items(id, v) with ids 1..1000, v = 'x'. pgjdbc sends setInt as a binary int4 and
// setString as text; after prepareThreshold (5) executions a PreparedStatement uses a named
// server-side statement, so later steps Bind a statement parsed once.
//
// Steps: delete_small x8 (WHERE id = ? OR id > ? judged per value: one row each, across the
// threshold), delete_whole (the same statement with a bound at the type's domain: 42501),
// delete_after (the statement still works), select_limit (LIMIT ?), select_range (BETWEEN ? AND ?),
// select_whole (id > -2147483648: unbounded, 42501), like_pattern ('zz%'), like_everything ('%':
// 42501), done.

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Properties;

public class BoundValuesCheck {
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
        report("done", true, null, 0, null);
    }
}
