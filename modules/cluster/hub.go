package cluster

import "sync"

// subscription identifies one Subscribe call.
type subscription struct {
	topic string
	id    uint64
}

// hub holds an engine's subscribers and hands them events.
type hub struct {
	mu   sync.RWMutex
	next uint64
	subs map[string]map[uint64]func(Event)
}

func newHub() *hub {
	return &hub{subs: make(map[string]map[uint64]func(Event))}
}

func (h *hub) subscribe(topic string, fn func(Event)) subscription {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.next++
	if h.subs[topic] == nil {
		h.subs[topic] = make(map[uint64]func(Event))
	}
	h.subs[topic][h.next] = fn
	return subscription{topic: topic, id: h.next}
}

func (h *hub) unsubscribe(s subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[s.topic], s.id)
	if len(h.subs[s.topic]) == 0 {
		delete(h.subs, s.topic)
	}
}

// deliver calls the subscribers of ev's topic, outside the lock so that a
// subscriber may subscribe or unsubscribe.
func (h *hub) deliver(ev Event) {
	h.mu.RLock()
	fns := make([]func(Event), 0, len(h.subs[ev.Topic]))
	for _, fn := range h.subs[ev.Topic] {
		fns = append(fns, fn)
	}
	h.mu.RUnlock()
	for _, fn := range fns {
		fn(ev)
	}
}

// resync tells every subscriber of every topic that notifications may have
// been missed.
func (h *hub) resync() {
	h.mu.RLock()
	var evs []Event
	var fns []func(Event)
	for topic, subs := range h.subs {
		for _, fn := range subs {
			evs = append(evs, Event{Topic: topic, Resync: true})
			fns = append(fns, fn)
		}
	}
	h.mu.RUnlock()
	for i, fn := range fns {
		fn(evs[i])
	}
}
