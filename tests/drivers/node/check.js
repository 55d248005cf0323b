'use strict'
// A scripted node-postgres session through the dbwarden relay, for
// tests/integration/test_drivers.py.
//
//   node tests/drivers/node/check.js HOST PORT DB USER APPLICATION_NAME
//
// Prints one JSON object per line, one per step ({"step": ..., ...}); a step that fails
// unexpectedly prints "ok": false with the SQLSTATE and message and the script goes on, so that the
// test sees every step. Expects the tables of test_drivers.py: customers(id, email) with ids 1..50
// and an empty scratch(id).
//
// node-postgres sends a query with values, a named query, or queryMode 'extended' with the
// extended protocol (Parse/Bind/Describe/Execute/Sync); a named query is parsed once per
// connection and only bound afterwards.
//
// Steps: connect; select_unnamed x3 (unnamed statement with a parameter); select x10 (the named
// statement "by-id"); tables / columns (catalog queries with parameters); delete (DELETE FROM
// customers, no parameters, extended), delete_param (a parameter in RETURNING), delete_named x2
// (named statement "wipe"); recovery (the named SELECT again), recovery_fresh; then in a
// transaction tx_insert, tx_delete, tx_insert2 (expects 25P02), tx_rollback and scratch_count;
// done.

const { Client } = require('pg')

function emit(step, fields) {
  process.stdout.write(JSON.stringify(Object.assign({ step }, fields)) + '\n')
}

function errorFields(err) {
  return { ok: false, sqlstate: err.code || null, message: err.message, detail: err.detail || null }
}

async function step(name, extra, fn) {
  try {
    emit(name, Object.assign({}, extra, { ok: true }, await fn()))
  } catch (err) {
    emit(name, Object.assign({}, extra, errorFields(err)))
  }
}

async function main() {
  const [host, port, database, user, applicationName] = process.argv.slice(2)
  if (!applicationName) {
    process.stderr.write('usage: check.js HOST PORT DB USER APPLICATION_NAME\n')
    process.exit(2)
  }
  const client = new Client({
    host,
    port: Number(port),
    database,
    user,
    application_name: applicationName,
    ssl: false,
    connectionTimeoutMillis: 15000,
    query_timeout: 30000, // a stalled relay fails the step, not the test run
  })
  try {
    await client.connect()
  } catch (err) {
    emit('connect', errorFields(err))
    process.exit(1)
  }
  const version = await client.query({ text: 'SELECT current_setting($1) AS v', values: ['server_version'] })
  emit('connect', { ok: true, server_version: version.rows[0].v })

  const byIdText = 'SELECT email FROM customers WHERE id = $1'
  for (let i = 1; i <= 3; i++) {
    await step('select_unnamed', { i, id: i }, async () => {
      const r = await client.query(byIdText, [i])
      return { email: r.rows.length ? r.rows[0].email : null }
    })
  }
  for (let i = 1; i <= 10; i++) {
    await step('select', { i, id: i }, async () => {
      const r = await client.query({ name: 'by-id', text: byIdText, values: [i] })
      return { email: r.rows.length ? r.rows[0].email : null }
    })
  }

  await step('tables', {}, async () => {
    const r = await client.query({
      text: 'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2',
      values: ['public', 'customers'],
    })
    return { names: r.rows.map((row) => row.table_name) }
  })
  await step('columns', {}, async () => {
    const r = await client.query({
      text:
        'SELECT column_name, data_type FROM information_schema.columns ' +
        'WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position',
      values: ['public', 'customers'],
    })
    return { names: r.rows.map((row) => row.column_name), types: r.rows.map((row) => row.data_type) }
  })

  // Statements the policy refuses (no WHERE), all in the extended protocol.
  await step('delete', {}, async () => {
    const r = await client.query({ text: 'DELETE FROM customers', values: [], queryMode: 'extended' })
    return { rows: r.rowCount }
  })
  await step('delete_param', {}, async () => {
    const r = await client.query({ text: 'DELETE FROM customers RETURNING $1::int', values: [1] })
    return { rows: r.rowCount }
  })
  for (let i = 1; i <= 2; i++) {
    await step('delete_named', { i }, async () => {
      const r = await client.query({ name: 'wipe', text: 'DELETE FROM customers', values: [] })
      return { rows: r.rowCount }
    })
  }

  // Recovery on the same client: the named statement parsed before the refusals, and a new one.
  await step('recovery', { id: 42 }, async () => {
    const r = await client.query({ name: 'by-id', text: byIdText, values: [42] })
    return { email: r.rows.length ? r.rows[0].email : null }
  })
  await step('recovery_fresh', {}, async () => {
    const r = await client.query('SELECT count(*)::int AS n FROM customers WHERE id <= $1', [50])
    return { count: r.rows[0].n }
  })

  // The refusal inside a transaction aborts it, as a server-side error would.
  await step('tx_begin', {}, async () => {
    await client.query('BEGIN')
    return {}
  })
  await step('tx_insert', {}, async () => {
    const r = await client.query('INSERT INTO scratch VALUES ($1)', [2001])
    return { rows: r.rowCount }
  })
  await step('tx_delete', {}, async () => {
    const r = await client.query({ text: 'DELETE FROM customers', values: [], queryMode: 'extended' })
    return { rows: r.rowCount }
  })
  await step('tx_insert2', {}, async () => {
    const r = await client.query('INSERT INTO scratch VALUES ($1)', [2002])
    return { rows: r.rowCount }
  })
  await step('tx_rollback', {}, async () => {
    await client.query('ROLLBACK')
    return {}
  })
  await step('scratch_count', {}, async () => {
    const r = await client.query({ text: 'SELECT count(*)::int AS n FROM scratch', values: [], queryMode: 'extended' })
    return { count: r.rows[0].n }
  })

  await client.end()
  emit('done', { ok: true })
}

main().catch((err) => {
  process.stderr.write(`check.js: ${err.stack || err}\n`)
  process.exit(1)
})
