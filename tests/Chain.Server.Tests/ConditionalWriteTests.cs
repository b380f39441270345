using System.Collections.Concurrent;
using System.Text;
using Chain.Client;

namespace Chain.Server.Tests;

/// <summary>Create-only and compare-and-set writes and conditional deletes, decided at the head in sequence order.</summary>
public class ConditionalWriteTests
{
    private static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public async Task Create_only_put_fails_when_the_object_exists_and_leaves_it_unchanged()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync();
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("pkgs");

        PutResult first = await client.PutAsync("pkgs", "tool-1.0.tgz", Bytes("first"), new PutOptions { IfAbsent = true });
        var error = await Assert.ThrowsAsync<PreconditionFailedException>(() =>
            client.PutAsync("pkgs", "tool-1.0.tgz", Bytes("second"), new PutOptions { IfAbsent = true }));

        Assert.Contains("absent", error.Message);
        Assert.Equal(Bytes("first"), await client.GetBytesAsync("pkgs", "tool-1.0.tgz"));
        Assert.Equal(first.Version, (await client.StatAsync("pkgs", "tool-1.0.tgz")).Version);
    }

    [Fact]
    public async Task Put_if_version_replaces_only_the_named_version()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync();
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("reg");
        PutResult v1 = await client.PutAsync("reg", "k", Bytes("one"));

        PutResult v2 = await client.PutAsync("reg", "k", Bytes("two"), new PutOptions { IfVersion = v1.Version });
        await Assert.ThrowsAsync<PreconditionFailedException>(() =>
            client.PutAsync("reg", "k", Bytes("three"), new PutOptions { IfVersion = v1.Version }));
        await Assert.ThrowsAsync<PreconditionFailedException>(() =>
            client.PutAsync("reg", "missing", Bytes("x"), new PutOptions { IfVersion = v1.Version }));

        // Versions start at 1: on the wire 0 means "no condition", so the client refuses it rather than send it.
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() =>
            client.PutAsync("reg", "k", Bytes("zero"), new PutOptions { IfVersion = 0 }));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.DeleteAsync("reg", "k", 0UL));

        Assert.True(v2.Version > v1.Version);
        Assert.Equal(Bytes("two"), await client.GetBytesAsync("reg", "k"));
        await Assert.ThrowsAsync<ObjectNotFoundException>(() => client.StatAsync("reg", "missing"));
    }

    [Fact]
    public async Task Conditional_delete_removes_only_the_named_version()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync();
        using ChainClient client = c.CreateClient();
        await client.CreateBucketAsync("del");
        PutResult v1 = await client.PutAsync("del", "k", Bytes("one"));
        PutResult v2 = await client.PutAsync("del", "k", Bytes("two"));

        await Assert.ThrowsAsync<PreconditionFailedException>(() => client.DeleteAsync("del", "k", v1.Version));
        Assert.Equal(Bytes("two"), await client.GetBytesAsync("del", "k"));
        Assert.True(await client.DeleteAsync("del", "k", v2.Version));
        await Assert.ThrowsAsync<ObjectNotFoundException>(() => client.StatAsync("del", "k"));
    }

    /// <summary>
    /// Many writers race create-only puts on the same keys, all in flight at once, so most conditions are decided
    /// while earlier writes of the same key are queued but not yet durable: exactly one wins per key, and every
    /// reader sees the winner's bytes.
    /// </summary>
    [Fact]
    public async Task Racing_create_only_puts_have_exactly_one_winner_per_key()
    {
        await using InProcessCluster c = await InProcessCluster.StartAsync(chains: 2);
        ChainClient[] clients = Enumerable.Range(0, 4).Select(_ => c.CreateClient()).ToArray();
        await clients[0].CreateBucketAsync("race");
        const int keys = 8, writersPerKey = 12;
        var winners = new ConcurrentDictionary<string, ConcurrentBag<string>>();
        var losers = new ConcurrentDictionary<string, int>();

        await Task.WhenAll(Enumerable.Range(0, keys * writersPerKey).Select(async i =>
        {
            string key = "k" + (i % keys);
            string value = $"writer-{i}";
            ChainClient client = clients[i % clients.Length];
            try
            {
                await client.PutAsync("race", key, Bytes(value), new PutOptions { IfAbsent = true });
                winners.GetOrAdd(key, _ => new ConcurrentBag<string>()).Add(value);
            }
            catch (PreconditionFailedException)
            {
                losers.AddOrUpdate(key, 1, (_, n) => n + 1);
            }
        }));

        for (int k = 0; k < keys; k++)
        {
            string key = "k" + k;
            Assert.True(winners.TryGetValue(key, out var won), $"no writer won {key}");
            string winner = Assert.Single(won!);
            Assert.Equal(writersPerKey - 1, losers.GetValueOrDefault(key));
            foreach (ChainClient reader in clients)
                Assert.Equal(winner, Encoding.UTF8.GetString(await reader.GetBytesAsync("race", key)));
        }
        foreach (ChainClient client in clients)
            client.Dispose();
    }
}
