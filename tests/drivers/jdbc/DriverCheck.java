// A scripted pgjdbc session through the dbwarden relay, for tests/integration/test_drivers.py.
//
//   java -cp /usr/share/java/postgresql.jar DriverCheck.java HOST PORT DB USER APPLICATION_NAME
//
// Prints one JSON object per line, one per step ({"step": ..., ...}); a step that fails
// unexpectedly prints "ok": false with the SQLSTATE and message and the script goes on, so that the
// test sees every step. Expects the tables of test_drivers.py: customers(id, email) with ids 1..50
// and an empty scratch(id).
//
// Steps: connect; select x10 on one PreparedStatement (pgjdbc switches from the unnamed statement
// to a named server-side one after prepareThreshold=5 executions); tables / columns
// (DatabaseMetaData); delete (DELETE FROM customers, denied on prod for agents, refused pending
// approval for humans) and delete_again x6 on the same PreparedStatement (past the threshold, so
// the later ones are named Parses); recovery (the named SELECT again), recovery_fresh (a new
// statement); then in a transaction tx_insert, tx_delete, tx_insert2 (expects 25P02), tx_rollback
// and scratch_count; done.

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

public class DriverCheck {
    static String json(Object v) {
        if (v == null) {
            return "null";
        }
        if (v instanceof Boolean || v instanceof Integer || v instanceof Long) {
            return v.toString();
        }
        if (v instanceof List<?> list) {
            StringBuilder sb = new StringBuilder("[");
            for (int i = 0; i < list.size(); i++) {
                sb.append(i == 0 ? "" : ",").append(json(list.get(i)));
            }
            return sb.append(']').toString();
        }
        String s = v.toString();
        StringBuilder sb = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        return sb.append('"').toString();
    }

    static void emit(String step, Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("step", step);
        for (int i = 0; i + 1 < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        StringBuilder sb = new StringBuilder("{");
        boolean first = true;
        for (Map.Entry<String, Object> e : m.entrySet()) {
            sb.append(first ? "" : ",").append(json(e.getKey())).append(':').append(json(e.getValue()));
            first = false;
        }
        System.out.println(sb.append('}'));
        System.out.flush();
    }

    static void emitError(String step, SQLException e, Object... kv) {
        Object[] all = new Object[kv.length + 6];
        all[0] = "ok";
        all[1] = false;
        all[2] = "sqlstate";
        all[3] = e.getSQLState();
        all[4] = "message";
        all[5] = e.getMessage();
        System.arraycopy(kv, 0, all, 6, kv.length);
        emit(step, all);
    }

    static boolean serverPrepared(PreparedStatement ps) {
        try {
            return ps.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare();
        } catch (SQLException e) {
            return false;
        }
    }

    static String selectEmail(PreparedStatement ps, int id) throws SQLException {
        ps.setInt(1, id);
        try (ResultSet rs = ps.executeQuery()) {
            return rs.next() ? rs.getString(1) : null;
        }
    }

    static long scalar(PreparedStatement ps) throws SQLException {
        try (ResultSet rs = ps.executeQuery()) {
            rs.next();
            return rs.getLong(1);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: DriverCheck HOST PORT DB USER APPLICATION_NAME");
            System.exit(2);
        }
        // pgjdbc's defaults leave application_name out of the startup packet and send
        // `SET application_name` after connecting; dbwarden re-classifies the session when the
        // server reports the new name, so no driver option is needed for agent rules to apply.
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/" + args[2]
                + "?ApplicationName=" + args[4] + "&sslmode=disable";
        Properties props = new Properties();
        props.setProperty("user", args[3]);
        props.setProperty("prepareThreshold", "5");
        props.setProperty("connectTimeout", "15");
        props.setProperty("socketTimeout", "30");  // a stalled relay fails the step, not the test run
        Connection conn;
        try {
            conn = DriverManager.getConnection(url, props);
        } catch (SQLException e) {
            emitError("connect", e);
            System.exit(1);
            return;
        }
        emit("connect", "ok", true, "server_version", conn.getMetaData().getDatabaseProductVersion(),
             "application_name", conn.getClientInfo("ApplicationName"));

        // (a) one PreparedStatement, ten executions: unnamed Parse for the first four, then a
        // named server-side statement (S_n) that later executions only Bind.
        PreparedStatement select = conn.prepareStatement("SELECT email FROM customers WHERE id = ?");
        for (int i = 1; i <= 10; i++) {
            try {
                String email = selectEmail(select, i);
                emit("select", "i", i, "id", i, "ok", true, "email", email,
                     "server_prepared", serverPrepared(select));
            } catch (SQLException e) {
                emitError("select", e, "i", i, "id", i);
            }
        }

        // (b) metadata queries.
        try {
            DatabaseMetaData md = conn.getMetaData();
            List<String> tables = new ArrayList<>();
            try (ResultSet rs = md.getTables(null, "public", "customers", new String[] {"TABLE"})) {
                while (rs.next()) {
                    tables.add(rs.getString("TABLE_NAME"));
                }
            }
            emit("tables", "ok", true, "names", tables);
        } catch (SQLException e) {
            emitError("tables", e);
        }
        try {
            DatabaseMetaData md = conn.getMetaData();
            List<String> columns = new ArrayList<>();
            List<String> types = new ArrayList<>();
            try (ResultSet rs = md.getColumns(null, "public", "customers", null)) {
                while (rs.next()) {
                    columns.add(rs.getString("COLUMN_NAME"));
                    types.add(rs.getString("TYPE_NAME"));
                }
            }
            emit("columns", "ok", true, "names", columns, "types", types);
        } catch (SQLException e) {
            emitError("columns", e);
        }

        // (c) a statement the policy refuses, then the same again past prepareThreshold.
        PreparedStatement delete = conn.prepareStatement("DELETE FROM customers");
        for (int i = 1; i <= 7; i++) {
            String step = i == 1 ? "delete" : "delete_again";
            try {
                int n = delete.executeUpdate();
                emit(step, "i", i, "ok", true, "rows", n);
            } catch (SQLException e) {
                emitError(step, e, "i", i);
            }
        }

        // (d) recovery on the same connection: the named SELECT, and a statement parsed now.
        try {
            emit("recovery", "ok", true, "id", 42, "email", selectEmail(select, 42),
                 "server_prepared", serverPrepared(select));
        } catch (SQLException e) {
            emitError("recovery", e, "id", 42);
        }
        try (PreparedStatement ps = conn.prepareStatement(
                "SELECT count(*) FROM customers WHERE id <= ?")) {
            ps.setInt(1, 50);
            emit("recovery_fresh", "ok", true, "count", scalar(ps));
        } catch (SQLException e) {
            emitError("recovery_fresh", e);
        }

        // (e) the refusal inside a transaction aborts it, as a server-side error would.
        try {
            conn.setAutoCommit(false);
            try (PreparedStatement ins = conn.prepareStatement("INSERT INTO scratch VALUES (?)")) {
                ins.setInt(1, 1001);
                try {
                    emit("tx_insert", "ok", true, "rows", ins.executeUpdate());
                } catch (SQLException e) {
                    emitError("tx_insert", e);
                }
                try (PreparedStatement del = conn.prepareStatement("DELETE FROM customers")) {
                    emit("tx_delete", "ok", true, "rows", del.executeUpdate());
                } catch (SQLException e) {
                    emitError("tx_delete", e);
                }
                ins.setInt(1, 1002);
                try {
                    emit("tx_insert2", "ok", true, "rows", ins.executeUpdate());
                } catch (SQLException e) {
                    emitError("tx_insert2", e);
                }
            }
            try {
                conn.rollback();
                emit("tx_rollback", "ok", true);
            } catch (SQLException e) {
                emitError("tx_rollback", e);
            }
            conn.setAutoCommit(true);
        } catch (SQLException e) {
            emitError("tx", e);
        }
        try (PreparedStatement ps = conn.prepareStatement("SELECT count(*) FROM scratch")) {
            emit("scratch_count", "ok", true, "count", scalar(ps));
        } catch (SQLException e) {
            emitError("scratch_count", e);
        }

        select.close();
        delete.close();
        conn.close();
        emit("done", "ok", true);
    }
}
