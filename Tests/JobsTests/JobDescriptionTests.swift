import Foundation
import Jobs
import Measure
import MLA
import TensorCore
import Testing

/// A job description is what a child job gets instead of flags: every field must survive the
/// file it travels in.
@Suite struct JobDescriptionTests {
    /// Every field off its default.
    static let model = ModelChoice(origin: .checkpoint(config: "/ckpt/config.json", weights: "/ckpt"), gate: .replicatedSliced, seed: 77,
                                   dtype: .bf16, kvCache: .fp8, activation: .softplus, overrides: [.init(key: "rope_theta", value: "5000"),
                                                                                  .init(key: "q_lora_rank", value: "null")])
    static let reduction = ReductionChoice(route: .mpi, dtype: .f32)

    static var run: RunSpec {
        var s = RunSpec()
        (s.layer, s.input, s.output, s.tokens, s.seqs) = (3, "/in.safetensors", "/out.safetensors", 9, [7, 1, 12])
        (s.decodeSteps, s.prefillChunk, s.decode, s.dp, s.dcp) = (2, 4, .naive, 2, 2)
        (s.check, s.checkStages, s.json) = (false, true, true)
        return s
    }

    static var step: StepSpec {
        var s = StepSpec()
        (s.tokens, s.context, s.decode, s.repeats) = (24, 40, .naive, 3)
        (s.probe, s.probeFirst, s.probeShape, s.probeAllReduceBytes, s.out) = (true, true, .init(m: 2, n: 3, k: 5), 4096, "/step.json")
        return s
    }

    static var invariance: InvarianceSpec {
        var s = InvarianceSpec()
        (s.dp, s.dcp, s.lengths, s.decode, s.out) = (2, 2, [5, 1, 3], .naive, "/trace.json")
        s.passes = [.init(arrangement: .reversed, chunking: .chunk(3)), .init(arrangement: .alone, chunking: .decode)]
        return s
    }

    @Test(arguments: [JobDescription.Work.run(run), .step(step), .invariance(invariance)])
    func roundTripsThroughItsFileWithEveryField(_ work: JobDescription.Work) throws {
        let job = JobDescription(model: Self.model, reduction: Self.reduction, work: work)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("job-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try job.write(to: path)
        #expect(try JobDescription.load(path) == job)
    }

    @Test func aPresetOriginRoundTripsToo() throws {
        let job = JobDescription(model: ModelChoice(origin: .preset("tiny")), reduction: ReductionChoice(), work: .run(RunSpec()))
        let data = try JSONEncoder().encode(job)
        #expect(try JSONDecoder().decode(JobDescription.self, from: data) == job)
    }

    @Test func anUnreadableFileSaysWhatToPass() {
        let error = #expect(throws: MeasureError.self) { try JobDescription.load("/nonexistent/job.json") }
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains("job description") && text.contains("mla-tp sweep"), "\(text)")
    }

    @Test func theModelChoiceAppliesTheActivationAndEveryOverride() throws {
        var choice = ModelChoice(origin: .preset("tiny"), activation: .softplus)
        choice.overrides = [.init(key: "rope_theta", value: "5000")]
        let (config, name) = try choice.loadConfig()
        #expect(name == "tiny" && config.gatedAttnAct == "softplus" && config.ropeTheta == 5000)
        #expect(choice.inputFiles.isEmpty)
    }
}
