using System.Net;
using System.Net.Sockets;

namespace Chain.Harness;

public static class PortAllocator
{
    /// <summary>
    /// Distinct free loopback ports, found by binding sockets to port 0. All sockets stay bound until every
    /// port is chosen, so the ports differ; they are released before returning (another process could
    /// still take one in between, which start-up then reports).
    /// </summary>
    public static int[] FreePorts(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var listeners = new List<TcpListener>(count);
        try
        {
            for (int i = 0; i < count; i++)
            {
                var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                listeners.Add(listener);
            }
            return listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            foreach (TcpListener listener in listeners)
                listener.Stop();
        }
    }
}
