// Cross-language check for the Go package: Node bendec encodes the fixtures and decodes the
// frames Go encoded, converting to and from the Go package's JSON mapping on its own (a second
// implementation of that mapping). Run by TestNodeBendec:
//
//   node crosscheck.js schema.json values.json goframes.json > out.json
//
// values.json: [{type, value}] with every number as a decimal string (JSON.parse would round
// 64-bit integers). goframes.json: [hex]. Output: {nodeFrames: [hex], decoded: [value]}, 64-bit
// integers written exactly.
'use strict'
const fs = require('fs')
const { Bendec } = require('bendec')

const [schemaFile, valuesFile, goFile] = process.argv.slice(2)
const types = JSON.parse(fs.readFileSync(schemaFile, 'utf8'))
const values = JSON.parse(fs.readFileSync(valuesFile, 'utf8'))
const goFrames = JSON.parse(fs.readFileSync(goFile, 'utf8'))

const defs = Object.fromEntries(types.map(t => [t.name, t]))
const big = new Set(['u64', 'i64'])

// bendec 0.51.0 has no readers for i8, i16, i32 and f32; these are the obvious ones.
const readers = {
  i8: i => [`buffer.readInt8(${i})`, i + 1],
  i16: i => [`buffer.readInt16LE(${i})`, i + 2],
  i32: i => [`buffer.readInt32LE(${i})`, i + 4],
  f32: i => [`buffer.readFloatLE(${i})`, i + 4],
}
const writers = {
  i8: (i, _l, p) => [`buffer.writeInt8(${p}, ${i})`, i + 1],
  i16: (i, _l, p) => [`buffer.writeInt16LE(${p}, ${i})`, i + 2],
  i32: (i, _l, p) => [`buffer.writeInt32LE(${p}, ${i})`, i + 4],
  f32: (i, _l, p) => [`buffer.writeFloatLE(${p}, ${i})`, i + 4],
}
const bendec = new Bendec({ types: JSON.parse(JSON.stringify(types)), readers, writers })

// Kinds as bendec decides them, by keys.
function kind(d) {
  if (d.size !== undefined) return 'prim'
  if (d.type !== undefined && d.length !== undefined) return 'array'
  if (d.alias !== undefined) return 'alias'
  if (d.fields !== undefined) return 'struct'
  if (d.variants !== undefined) return 'enum'
  if (d.members !== undefined) return 'union'
  throw new Error('unknown kind ' + JSON.stringify(d))
}
function resolve(name) {
  let d = defs[name]
  while (kind(d) === 'alias') d = defs[d.alias]
  return d
}
function variantValue(d, v) {
  const offset = d.offset === undefined ? 0 : parseInt(d.offset)
  let n = v
  if (typeof v === 'string') n = v.startsWith('0b') ? parseInt(v.substr(2), 2) : parseInt(v)
  return n + offset
}
function isChar(name) { return resolve(name).name === 'char' }

function toNode(name, v, length) {
  if (length) {
    if (isChar(name)) return Buffer.from(v, 'utf8')
    return v.map(x => toNode(name, x))
  }
  const d = resolve(name)
  switch (kind(d)) {
    case 'prim':
      if (d.name === 'bool') return v
      if (big.has(d.name)) return BigInt(v)
      return Number(v)
    case 'array':
      return toNode(d.type, v, d.length)
    case 'enum': {
      const lookup = Object.fromEntries(d.variants.map(([n, x]) => [n, variantValue(d, x)]))
      let n = d.bitflags ? v.reduce((a, x) => a | lookup[x], 0) : lookup[v]
      if (n === undefined) throw new Error(`${d.name}: no variant ${v}`)
      return big.has(resolve(d.underlying).name) ? BigInt(n) : n
    }
    case 'struct':
      return Object.fromEntries(d.fields.map(f => [f.name, toNode(f.type, v[f.name], f.length)]))
    case 'union':
      return toNode(d.discriminator.reduce((o, k) => o[k], v), v)
  }
}

function fromNode(name, v, length) {
  if (length) {
    if (isChar(name)) return v.toString('utf8').replace(/\u0000+$/, '')
    return v.map(x => fromNode(name, x))
  }
  const d = resolve(name)
  switch (kind(d)) {
    case 'prim':
      if (typeof v === 'bigint') return '__big:' + v.toString()
      return v
    case 'array':
      return fromNode(d.type, v, d.length)
    case 'enum': {
      const vs = d.variants.map(([n, x]) => [n, variantValue(d, x)])
      if (d.bitflags) return vs.filter(([, x]) => x !== 0 && (Number(v) & x) === x).map(([n]) => n)
      const hit = vs.find(([, x]) => x === Number(v))
      if (!hit) throw new Error(`${d.name}: no variant for ${v}`)
      return hit[0]
    }
    case 'struct':
      return Object.fromEntries(d.fields.map(f => [f.name, fromNode(f.type, v[f.name], f.length)]))
    case 'union': {
      // The member is the type named by the discriminator's variant.
      let t = defs[d.members[0]], x = v
      for (const k of d.discriminator) {
        const f = resolve(t.name).fields.find(f => f.name === k)
        x = x[k]
        t = resolve(f.type)
      }
      const member = fromNode(t.name, x)
      return fromNode(member, v)
    }
  }
}

// Values arrive with numbers as strings; toNode turns them into numbers or BigInts.
const nodeFrames = values.map(({ type, value }) => {
  const buf = Buffer.alloc(bendec.getSize(type))
  bendec.encodeAs(toNode(type, value), type, buf)
  return buf.toString('hex')
})
const decoded = values.map(({ type }, i) => fromNode(type, bendec.decodeAs(Buffer.from(goFrames[i], 'hex'), type)))
const out = JSON.stringify({ nodeFrames, decoded }).replace(/"__big:(-?\d+)"/g, '$1')
process.stdout.write(out + '\n')
