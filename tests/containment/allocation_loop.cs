// outcome: outOfMemory
// why: on the first "Go" event Apply keeps 8 MB arrays alive forever; the worker's memory limit must stop it.
using System;
using System.Collections.Generic;
using Hapnd.Projections.Contracts;

public record AllocationState(int Chunks);

public class AllocationLoopReducer : IReducer<AllocationState>
{
    public AllocationState Apply(AllocationState? state, Event @event)
    {
        var s = state ?? new AllocationState(0);
        if (@event.Type != "Go")
        {
            return s;
        }

        var hoard = new List<long[]>();
        while (true)
        {
            var chunk = new long[1_000_000];
            // Touch every page so the memory is really committed, not just reserved.
            for (var i = 0; i < chunk.Length; i += 512)
            {
                chunk[i] = i + hoard.Count;
            }

            hoard.Add(chunk);
            if (hoard.Count < 0)
            {
                return s with { Chunks = hoard.Count };
            }
        }
    }
}
