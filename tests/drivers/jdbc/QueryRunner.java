// Runs statements through pgjdbc and prints what came back, for
// tests/integration/test_mask_adversarial.py.
//
//   java -cp /usr/share/java/postgresql.jar QueryRunner.java HOST PORT DB USER FILE
//
// FILE holds one base64-encoded statement per line. Each runs as a prepared statement
// (prepareThreshold=1: a named server-side statement; binary transfer where pgjdbc uses it) in
// a transaction that is rolled back. For each, one line: base64 of every value of every row, the
// warnings (notices) and the error's message, detail, hint and context, separated by newlines.

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.SQLWarning;
import java.util.Base64;
import java.util.List;
import java.util.Properties;
import org.postgresql.util.PSQLException;
import org.postgresql.util.ServerErrorMessage;

public class QueryRunner {
  static Connection connect(String url, Properties p) throws SQLException {
    Connection c = DriverManager.getConnection(url, p);
    c.setAutoCommit(false);
    return c;
  }

  public static void main(String[] args) throws Exception {
    String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/" + args[2];
    Properties p = new Properties();
    p.setProperty("user", args[3]);
    p.setProperty("prepareThreshold", "1");
    p.setProperty("binaryTransfer", "true");
    List<String> lines = Files.readAllLines(Path.of(args[4]));
    Connection conn = connect(url, p);
    for (String line : lines) {
      String sql = new String(Base64.getDecoder().decode(line.trim()), StandardCharsets.UTF_8);
      StringBuilder out = new StringBuilder();
      try (PreparedStatement st = conn.prepareStatement(sql)) {
        boolean rows = st.execute();
        while (true) {
          if (rows) {
            try (ResultSet rs = st.getResultSet()) {
              int n = rs.getMetaData().getColumnCount();
              while (rs.next())
                for (int i = 1; i <= n; i++) out.append(rs.getString(i)).append('\n');
            }
          } else if (st.getUpdateCount() == -1) {
            break;
          }
          rows = st.getMoreResults();
        }
        for (SQLWarning w = st.getWarnings(); w != null; w = w.getNextWarning())
          out.append("WARNING ").append(w.getMessage()).append('\n');
      } catch (SQLException e) {
        out.append("ERROR ").append(e.getMessage()).append('\n');
        if (e instanceof PSQLException) {
          ServerErrorMessage m = ((PSQLException) e).getServerErrorMessage();
          if (m != null)
            out.append(m.getDetail()).append('\n').append(m.getHint()).append('\n')
                .append(m.getWhere()).append('\n').append(m.getInternalQuery()).append('\n');
        }
      }
      try {
        conn.rollback();
      } catch (SQLException e) {
        conn = connect(url, p);  // the relay ended the session: a fresh one for the next
      }
      if (conn.isClosed()) conn = connect(url, p);
      System.out.println(
          Base64.getEncoder().encodeToString(out.toString().getBytes(StandardCharsets.UTF_8)));
    }
    conn.close();
  }
}
