import Measure
import Testing

@Suite struct SamplesTests {
    @Test func medianOfOddAndEvenCountsAndTheEmptyCase() {
        #expect(Samples([3, 1, 2]).median == 2)
        #expect(Samples([4, 1, 3, 2]).median == 2.5)
        #expect(Samples([4, 1, 3, 2]).min == 1 && Samples([4, 1, 3, 2]).max == 4)
        #expect(Samples([]).median == 0 && Samples([]).min == 0 && Samples([]).max == 0)
        #expect(Samples([5, 1]).samples == [5, 1], "the samples keep their order")
    }

    /// A ratio paired sample by sample cancels a drift that a ratio of medians keeps.
    @Test func pairedRatioCancelsADriftTheMediansKeep() {
        let slowdown = [1.0, 1.0, 3.0, 3.0, 3.0]                 // the machine got 3× slower half way
        let forward = Samples(slowdown.map { 2 * $0 }), reference = Samples(slowdown)
        #expect(forward.pairedRatio(to: reference) == 2)
        #expect(forward.median / reference.median == 2)
        let shifted = Samples([1, 1, 1, 3, 3].map { $0 * 1.0 })  // the reference saw the slowdown later
        #expect(forward.pairedRatio(to: shifted) != forward.median / shifted.median)
        #expect(Samples([1, 2]).pairedRatio(to: Samples([0, 0])) > 1e11, "a zero reference does not divide by zero")
    }
}
