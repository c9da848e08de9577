// Reads vitest's JSON report and prints the plain closing line CI looks for:
//   "N passed, N failed" (", N skipped" when some were skipped or todo)
// Usage: node scripts/ci/summary.mjs <report.json> <vitest exit code>
// Exits 1 when the report is missing or unreadable, any test or test file failed,
// vitest itself exited non-zero, or no test ran at all; 0 otherwise.
import { readFileSync } from "node:fs"

const [reportPath, exitCodeArg = "0"] = process.argv.slice(2)
const vitestExit = Number(exitCodeArg)

const fail = (why, line = "0 passed, 1 failed") => {
  console.log(`    ${why}`)
  console.log(line)
  process.exit(1)
}

let report
try {
  report = JSON.parse(readFileSync(reportPath, "utf8"))
} catch (error) {
  fail(`no usable vitest JSON report at ${reportPath} (vitest exited ${vitestExit}): ${error.message}`)
}

const num = (key) => (Number.isFinite(report[key]) ? report[key] : 0)
const total = num("numTotalTests")
const passed = num("numPassedTests")
const skipped = num("numPendingTests") + num("numTodoTests")
let failed = num("numFailedTests")
const notes = []

// A test file that failed to load or whose worker died has no failed test of its
// own; count each such file as one failure so the line never says "0 failed" for a red run.
for (const file of report.testResults ?? []) {
  const hasFailedTest = (file.assertionResults ?? []).some((t) => t.status === "failed")
  if (file.status === "failed" && !hasFailedTest) {
    failed += 1
    notes.push(`test file failed outside any test: ${file.name}${file.message ? ` — ${file.message}` : ""}`)
  }
}
if (vitestExit !== 0 && failed === 0) {
  failed = 1
  notes.push(`vitest exited ${vitestExit} although no test failed (an unhandled error? see the log above)`)
}
if (total === 0) notes.push("no test ran")

for (const note of notes) console.log(`    ${note}`)
console.log(`    vitest: ${total} tests in ${num("numTotalTestSuites")} suites; exit code ${vitestExit}`)
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`)
process.exit(failed > 0 || total === 0 || passed === 0 ? 1 : 0)
