/**
 * How many times more random cases the long-running tests make (kills, races and fuzzed command
 * lines in test/reliability, random map sequences in test/core/mapper-model.test.ts): 1 in `npm test`
 * (enough of each to catch a regression, and the suite stays quick), 10 in `npm run soak`
 * (HVMEM_SOAK=10: hundreds of processes), which CI runs too.
 */
export const SOAK = ((): number => {
  const text = process.env.HVMEM_SOAK ?? '1'
  const factor = Number(text)
  if (!/^[1-9][0-9]*$/.test(text) || factor > 1000) throw new Error(`HVMEM_SOAK must be a whole number from 1 to 1000, not ${JSON.stringify(text)}`)
  return factor
})()
