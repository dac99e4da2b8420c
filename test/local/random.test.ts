import { describe, expect, it } from "vitest";
import { createRandom as createBenchRandom } from "../../bench/lib/bench-data";
import { createRandom } from "../../local/random";

describe("createRandom", () => {
  it("yields mulberry32's known sequence for seed 42", () => {
    const random = createRandom(42);

    const values = [random(), random(), random(), random()];

    expect(values).toEqual([
      0.6011037519201636, 0.44829055899754167, 0.8524657934904099, 0.6697340414393693,
    ]);
  });

  it("treats a seed as an unsigned 32-bit integer", () => {
    const wrapped = createRandom(2 ** 32 + 1035);
    const plain = createRandom(1035);

    expect([wrapped(), wrapped()]).toEqual([plain(), plain()]);
  });

  it("is the generator the bench data is built with", () => {
    expect(createBenchRandom).toBe(createRandom);
  });
});
