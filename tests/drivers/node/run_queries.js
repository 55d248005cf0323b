'use strict'
// Runs statements through node-postgres and prints what came back, for
// tests/integration/test_mask_adversarial.py.
//
//   node tests/drivers/node/run_queries.js HOST PORT DB USER FILE
//
// FILE holds one base64-encoded statement per line. Each runs in a transaction that is rolled
// back, as a named extended-protocol query; every other one asks for binary results. For each,
// one line: base64 of every value of every row (JSON), the notices, and the error's message,
// detail, hint, where and internal query.

const fs = require('fs')
const { Client } = require('pg')

async function connect(args, notices) {
  const client = new Client({ host: args[0], port: Number(args[1]), database: args[2], user: args[3] })
  client.on('notice', (n) => notices.push(`NOTICE ${n.message} ${n.detail || ''} ${n.where || ''}`))
  client.on('error', () => {})
  await client.connect()
  return client
}

async function main() {
  const args = process.argv.slice(2)
  const lines = fs.readFileSync(args[4], 'utf8').split('\n').filter((l) => l.trim() !== '')
  const notices = []
  let client = await connect(args, notices)
  for (let i = 0; i < lines.length; i++) {
    const sql = Buffer.from(lines[i].trim(), 'base64').toString('utf8')
    let out = ''
    notices.length = 0
    try {
      await client.query('BEGIN')
      const res = await client.query({ text: sql, name: `q${i}`, rowMode: 'array', binary: i % 2 === 0 })
      for (const r of [].concat(res)) {
        for (const row of r.rows || []) out += JSON.stringify(row, (k, v) => (Buffer.isBuffer(v) ? v.toString('latin1') : v)) + '\n'
      }
    } catch (err) {
      out += `ERROR ${err.message}\n${err.detail || ''}\n${err.hint || ''}\n${err.where || ''}\n${err.internalQuery || ''}\n`
    }
    try {
      await client.query('ROLLBACK')
    } catch (err) {
      try { await client.end() } catch (e) {}
      client = await connect(args, notices)
    }
    out += notices.join('\n')
    process.stdout.write(Buffer.from(out, 'utf8').toString('base64') + '\n')
  }
  await client.end()
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack) + '\n')
  process.exit(1)
})
