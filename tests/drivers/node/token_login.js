'use strict'
// Logs in through the dbwarden relay with a token as the password, for
// tests/integration/test_token_auth.py, and prints what the server says the session is.
//
//   node tests/drivers/node/token_login.js HOST PORT DB USER TOKEN
//
// One line: "ok <current_user> <session_user>", or "error <SQLSTATE> <message>".

const { Client } = require('pg')

async function main() {
  const [host, port, database, user, password] = process.argv.slice(2)
  // TLS; the relay's certificate is not checked here (the test's CA is not the system's).
  const client = new Client({
    host,
    port: Number(port),
    database,
    user,
    password,
    ssl: { rejectUnauthorized: false },
    application_name: 'token-node'
  })
  try {
    await client.connect()
    const res = await client.query('SELECT current_user, session_user')
    process.stdout.write(`ok ${res.rows[0].current_user} ${res.rows[0].session_user}\n`)
    await client.end()
  } catch (err) {
    process.stdout.write(`error ${err.code || ''} ${String(err.message).replace(/\n/g, ' ')}\n`)
  }
}

main()
