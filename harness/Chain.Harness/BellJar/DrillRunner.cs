using System.Diagnostics;
using System.Globalization;
using Chain.Harness.BellJar.Scenarios;

namespace Chain.Harness.BellJar;

/// <summary>
/// Runs drill scenarios one after another, each in its own sealed cluster, under its time budget, while watching the
/// seal's recorded attempts: the first undeclared one (an attempt the manifests do not allow) ends the scenario as a
/// failure naming the role, the destination and the port.
/// </summary>
public static class DrillRunner
{
    /// <summary>Every scenario, by name.</summary>
    public static IReadOnlyList<IDrillScenario> Scenarios { get; } = new IDrillScenario[]
    {
        new ColdStartScenario(),
        new MasterSealedAwayScenario(),
        new NeighboursOnlyScenario(),
        new RegionLossScenario(),
        RestoreScenario.FromBackup(),
        RestoreScenario.Bootstrap(),
    };

    /// <summary>The set names: "short" (CI) and "full".</summary>
    public static IReadOnlyList<string> SetNames { get; } = new[] { "short", "full" };

    /// <summary>Why drills cannot run here (not root, tools missing), or null.</summary>
    public static string? Unavailable() => SealedNetwork.Unavailable();

    /// <summary>The scenarios a name stands for: a set name or one scenario's name; throws <see cref="ArgumentException"/> for an unknown name.</summary>
    public static IReadOnlyList<IDrillScenario> Resolve(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (SetNames.Contains(name, StringComparer.Ordinal))
            return Scenarios.Where(s => s.Sets.Contains(name, StringComparer.Ordinal)).ToList();
        IDrillScenario? one = Scenarios.FirstOrDefault(s => s.Name == name);
        return one is not null
            ? new[] { one }
            : throw new ArgumentException($"unknown drill scenario '{name}' (scenarios: {string.Join(", ", Scenarios.Select(s => s.Name))}; sets: {string.Join(", ", SetNames)})");
    }

    /// <summary>Runs <paramref name="scenarios"/> in order; never throws for a scenario's failure (it is in the result).</summary>
    public static async Task<IReadOnlyList<ScenarioResult>> RunAsync(IReadOnlyList<IDrillScenario> scenarios, DrillOptions options, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(scenarios);
        ArgumentNullException.ThrowIfNull(options);
        ManifestSet manifests = options.Manifests ?? ManifestSet.Load();
        var results = new List<ScenarioResult>();
        foreach (IDrillScenario scenario in scenarios)
        {
            ct.ThrowIfCancellationRequested();
            results.Add(await RunOneAsync(scenario, options, manifests, ct).ConfigureAwait(false));
        }
        return results;
    }

    private static async Task<ScenarioResult> RunOneAsync(IDrillScenario scenario, DrillOptions options, ManifestSet manifests, CancellationToken ct)
    {
        string directory = Path.Combine(Path.GetFullPath(options.WorkDirectory), scenario.Name);
        var context = new DrillContext(scenario, options, manifests, directory);
        TimeSpan budget = TimeSpan.FromSeconds(scenario.Budget.TotalSeconds * options.BudgetScale);
        context.Log($"{scenario.Description} (budget {budget.TotalSeconds:0} s, seed {options.Seed})");
        var stopwatch = Stopwatch.StartNew();
        using var run = CancellationTokenSource.CreateLinkedTokenSource(ct);
        run.CancelAfter(budget);
        using var stopWatching = new CancellationTokenSource();
        UndeclaredAttempt? caught = null;
        Task watch = WatchAsync(context, options.WatchInterval, attempt =>
        {
            caught = attempt;
            run.Cancel();
        }, stopWatching.Token);

        DrillStatus status = DrillStatus.Pass;
        string? failure = null;
        try
        {
            await scenario.RunAsync(context, run.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (caught is not null)
        {
            status = DrillStatus.Fail;
            failure = $"undeclared dependency: {caught} (the scenario stopped at: {Describe(e)})";
        }
        catch (Exception e) when (run.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            status = DrillStatus.Fail;
            failure = $"time budget of {budget.TotalSeconds:0} s exceeded (at: {Describe(e)})";
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            status = DrillStatus.Fail;
            failure = Describe(e);
        }
        catch (OperationCanceledException)
        {
            // The whole run was cancelled (Ctrl-C): no verdict, but no namespace or process left behind either.
            await stopWatching.CancelAsync().ConfigureAwait(false);
            await watch.ConfigureAwait(false);
            if (context.Cluster is { } running)
                await running.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        finally
        {
            await stopWatching.CancelAsync().ConfigureAwait(false);
            await watch.ConfigureAwait(false);
        }
        TimeSpan elapsed = stopwatch.Elapsed;

        IReadOnlyList<UndeclaredAttempt> attempts = Array.Empty<UndeclaredAttempt>();
        LocalCluster? cluster = context.Cluster;
        if (cluster?.Seal is { } seal)
        {
            try
            {
                attempts = await seal.AttemptsAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (ShellCommandException e)
            {
                context.Finding($"could not read the recorded attempts: {e.Message}");
            }
        }
        attempts = context.EarlierAttempts.Concat(attempts).ToList();
        foreach (UndeclaredAttempt attempt in attempts)
            context.Log($"dropped: {attempt}");
        var undeclared = attempts.Where(a => !a.Declared).ToList();
        if (undeclared.Count > 0 && status == DrillStatus.Pass)
        {
            status = DrillStatus.Fail;
            failure = "undeclared dependencies: " + string.Join("; ", undeclared);
        }
        if (status == DrillStatus.Fail && cluster is not null)
            failure += $" (logs: {cluster.Options.DataDirectory})";

        var rows = new List<RoleRow>();
        if (cluster?.Seal is { } sealedNetwork)
        {
            foreach (string role in sealedNetwork.Processes.Select(p => p.Role).Distinct())
            {
                var roleAttempts = attempts.Where(a => a.Role == role).ToList();
                DrillStatus roleStatus = status == DrillStatus.Pass && roleAttempts.Any(a => !a.Declared) ? DrillStatus.Fail : status;
                rows.Add(new RoleRow(scenario.Name, role, manifests.For(role).Describe(), roleAttempts,
                    context.TimeToServe.TryGetValue(role, out string? time) ? time : "-",
                    context.DataCheck?.ToString() ?? "not checked", roleStatus));
            }
        }
        else
        {
            rows.Add(new RoleRow(scenario.Name, "-", "-", Array.Empty<UndeclaredAttempt>(), "-", context.DataCheck?.ToString() ?? "not checked", status));
        }

        if (cluster is not null)
            await cluster.DisposeAsync().ConfigureAwait(false);
        if (!options.KeepData && status != DrillStatus.Fail)
            LocalCluster.TryDeleteDirectory(directory);
        context.Log($"{status.ToString().ToUpperInvariant()} in {elapsed.TotalSeconds:0.0} s{(failure is null ? "" : ": " + failure)}");
        return new ScenarioResult(scenario.Name, scenario.Description, status, failure, elapsed, budget, rows,
            context.Measurements.ToList(), context.Findings.ToList(), attempts);
    }

    /// <summary>Polls the seal's recorded attempts until stopped; reports the first undeclared one.</summary>
    private static async Task WatchAsync(DrillContext context, TimeSpan interval, Action<UndeclaredAttempt> onUndeclared, CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await Task.Delay(interval, ct).ConfigureAwait(false);
                if (context.Cluster?.Seal is not { } seal)
                    continue;
                IReadOnlyList<UndeclaredAttempt> attempts;
                try
                {
                    attempts = await seal.AttemptsAsync(ct).ConfigureAwait(false);
                }
                catch (ShellCommandException)
                {
                    continue; // namespaces going away at the end of the scenario
                }
                if (attempts.FirstOrDefault(a => !a.Declared) is { } attempt)
                {
                    context.Log($"undeclared attempt: {attempt}");
                    onUndeclared(attempt);
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private static string Describe(Exception e) => e switch
    {
        DrillFailure => e.Message,
        OperationCanceledException => "cancelled",
        _ => $"{e.GetType().Name}: {e.Message}",
    };

    /// <summary>The seed used when none is given: from the clock, printed by the caller.</summary>
    public static long NewSeed() => DateTime.UtcNow.Ticks % 1_000_000_000;

    internal static string Invariant(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);
}
