// Compiles src/*.sol with the pinned solc (package.json) and writes one
// artifact per contract to ../internal/evm/artifacts/<Name>.json:
// {"contractName", "abi", "bytecode", "deployedBytecode", "compiler"}.
// The output depends only on the sources and the compiler version: the
// same inputs give the same bytes (no timestamps, no absolute paths).
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const srcDir = path.join(__dirname, 'src');
const outDir = path.join(__dirname, '..', 'internal', 'evm', 'artifacts');

const sources = {};
for (const f of fs.readdirSync(srcDir).filter((f) => f.endsWith('.sol')).sort()) {
  sources[f] = { content: fs.readFileSync(path.join(srcDir, f), 'utf8') };
}
const input = {
  language: 'Solidity',
  sources,
  settings: {
    // Paris: no PUSH0, so the bytecode runs on every node the tests use
    // (go-ethereum's simulated backend, ganache).
    evmVersion: 'paris',
    optimizer: { enabled: true, runs: 200 },
    metadata: { bytecodeHash: 'none' },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === 'error');
for (const e of out.errors || []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);

fs.mkdirSync(outDir, { recursive: true });
for (const file of Object.keys(out.contracts).sort()) {
  for (const name of Object.keys(out.contracts[file]).sort()) {
    const c = out.contracts[file][name];
    const art = {
      contractName: name,
      compiler: 'solc ' + solc.version(),
      abi: c.abi,
      bytecode: '0x' + c.evm.bytecode.object,
      deployedBytecode: '0x' + c.evm.deployedBytecode.object,
    };
    fs.writeFileSync(path.join(outDir, name + '.json'), JSON.stringify(art, null, 1) + '\n');
    console.log('built ' + name + ' (' + (c.evm.deployedBytecode.object.length / 2) + ' bytes)');
  }
}
