// Compiles src/*.sol with the pinned solc (package.json) and writes one
// artifact per contract to ../internal/evm/artifacts/<Name>.json:
// {"contractName", "abi", "bytecode", "deployedBytecode", "compiler"}.
// It also copies Safe v1.4.1's own build artifacts (the contracts as the
// Safe team compiled and deployed them) from the pinned npm package.
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
    if (c.evm.bytecode.object === '') continue; // an interface: nothing to deploy
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

// Safe v1.4.1: the singleton, its proxy factory, the batch libraries and
// the fallback handler, exactly as published.
const safePkg = path.join(__dirname, 'node_modules', '@safe-global', 'safe-contracts');
const safeVersion = require(path.join(safePkg, 'package.json')).version;
if (safeVersion !== '1.4.1') {
  console.error('expected @safe-global/safe-contracts 1.4.1, found ' + safeVersion);
  process.exit(1);
}
const safeArtifacts = {
  Safe: 'Safe.sol/Safe.json',
  SafeL2: 'SafeL2.sol/SafeL2.json',
  SafeProxyFactory: 'proxies/SafeProxyFactory.sol/SafeProxyFactory.json',
  MultiSend: 'libraries/MultiSend.sol/MultiSend.json',
  MultiSendCallOnly: 'libraries/MultiSendCallOnly.sol/MultiSendCallOnly.json',
  CompatibilityFallbackHandler: 'handler/CompatibilityFallbackHandler.sol/CompatibilityFallbackHandler.json',
};
for (const name of Object.keys(safeArtifacts)) {
  const a = JSON.parse(fs.readFileSync(path.join(safePkg, 'build', 'artifacts', 'contracts', safeArtifacts[name]), 'utf8'));
  const art = {
    contractName: name,
    compiler: '@safe-global/safe-contracts ' + safeVersion,
    abi: a.abi,
    bytecode: a.bytecode,
    deployedBytecode: a.deployedBytecode,
  };
  fs.writeFileSync(path.join(outDir, name + '.json'), JSON.stringify(art, null, 1) + '\n');
  console.log('copied ' + name + ' (Safe ' + safeVersion + ')');
}
