using Chain.Simulation;
using Xunit;
using Xunit.Abstractions;

namespace Chain.Simulation.Tests;

public class SmokeTests(ITestOutputHelper output)
{
    [Fact]
    public void OneSeedRuns()
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("CHAIN_SIM_SEED"), out int s) ? s : 1;
        bool verbose = Environment.GetEnvironmentVariable("CHAIN_SIM_VERBOSE") == "1";
        var watch = System.Diagnostics.Stopwatch.StartNew();
        SimulationResult result = Simulator.Run(new SimulationParameters { Seed = seed, Verbose = verbose });
        output.WriteLine($"{watch.ElapsedMilliseconds} ms: {result.Summary}");
        foreach (string line in result.Log.TakeLast(verbose ? 3000 : 200))
            output.WriteLine(line);
        Assert.True(result.Passed, result.Summary);
    }
}
